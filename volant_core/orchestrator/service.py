"""The orchestrator: keeps the database, the VMM processes and the host consistent.

States: ``pending -> starting -> running -> stopping -> stopped``, and
``crashed`` from starting or running. A VM is ``running`` when kestrel answered
its health check, not when the VMM process started. Each state change is
written and published as exactly one event. Operations on one VM hold that
VM's lock; a supervisor thread per running VM waits for the agent, then for
the VMM to exit.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import threading
from dataclasses import dataclass, replace
from typing import Any

from volant_core.agent_client import AgentClient
from volant_core.api.models import CreateVMRequest
from volant_core.descriptors import LaunchAdditions, NetworkMode
from volant_core.errors import AgentError, ConflictError, PluginError, ValidationError, VolantError
from volant_core.events import Event, EventBus, EventType
from volant_core.launch import Instance, Launcher, LaunchSpec
from volant_core.manifest import parse_manifest
from volant_core.orchestrator.bootmedia import BootMedia
from volant_core.orchestrator.identity import mac_address
from volant_core.orchestrator.locks import NamedLocks
from volant_core.plugins import PluginHost
from volant_core.registry import Registries
from volant_core.runtimes import RuntimeCatalog
from volant_core.settings import Settings
from volant_core.store import Store, VMRecord
from volant_core.vm import ACTIVE_STATES, VMStatus, VMView

log = logging.getLogger(__name__)


@dataclass
class _Handle:
    """A VMM process this daemon watches, and the client that talks to its agent."""

    instance: Instance
    client: AgentClient
    stopping: bool = False
    failure: str | None = None


class Orchestrator:
    """VM lifecycle on top of the store, the plugin registries and the hypervisor."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        host: PluginHost,
        registries: Registries,
        catalog: RuntimeCatalog,
        events: EventBus,
    ) -> None:
        self.settings = settings
        self.store = store
        self.host = host
        self.registries = registries
        self.catalog = catalog
        self.events = events
        self.boot_media = BootMedia(
            settings, registries.boot_sources, lambda line: log.info("guest image: %s", line)
        )
        self._locks = NamedLocks()
        self._handles: dict[str, _Handle] = {}
        self._launchers: dict[str, Launcher] = {}
        self._modes: dict[str, NetworkMode] = {}
        self._factory_lock = threading.Lock()

    # ------------------------------------------------------------------ reads

    def list_vms(self) -> list[VMView]:
        """Every VM, oldest first."""
        return [self._view(record) for record in self.store.vms.list()]

    def get_vm(self, name: str) -> VMView:
        """One VM; NotFoundError if there is none."""
        return self._view(self.store.vms.get_by_name(name))

    def agent(self, name: str) -> AgentClient:
        """The client of a running VM's agent; ConflictError when it is not running."""
        record = self.store.vms.get_by_name(name)
        handle = self._handles.get(name)
        if handle is None or record.status != VMStatus.RUNNING:
            raise ConflictError(
                f"vm {name!r} is {record.status}; its agent answers only while it is running "
                f"(start it with `volar vms start {name}`)"
            )
        return handle.client

    # ---------------------------------------------------------------- create

    def create_vm(self, request: CreateVMRequest) -> VMView:
        """Record a VM and start booting it; everything is undone if any step fails."""
        entry = self.catalog.get_enabled(request.plugin)
        manifest = entry.manifest
        if request.runtime and request.runtime != manifest.runtime:
            raise ValidationError(
                f"runtime: {request.runtime!r} does not match plugin {entry.name!r}, whose runtime is "
                f"{manifest.runtime!r}; omit it or pass the plugin's runtime",
                field="runtime",
            )
        hypervisor = request.hypervisor or self.settings.hypervisor
        self._launcher(hypervisor, field="hypervisor")
        mode_name = request.network_mode or (manifest.network.mode if manifest.network else None)
        mode_name = mode_name or self.settings.network_mode
        mode = self.registries.network_modes.get(mode_name, field="network_mode")
        config: dict[str, Any] = {
            "plugin": entry.name,
            "runtime": manifest.runtime,
            "hypervisor": hypervisor,
            "network": {"mode": mode_name},
            "resources": {
                "cpu_cores": request.cpu_cores or manifest.resources.cpu_cores,
                "memory_mb": request.memory_mb or manifest.resources.memory_mb,
            },
            "kernel_cmdline": request.kernel_cmdline or "",
            "manifest": entry.manifest_dict(),
        }
        name = request.name
        with self._locks(name):
            self.host.hook.volant_vm_validate(vm=self._draft_view(name, config))
            with self.store.transaction():
                ip = self._lease_address(name) if mode.needs_ip else None
                record = self.store.vms.create(
                    name=name,
                    status=VMStatus.PENDING,
                    runtime=manifest.runtime,
                    plugin=entry.name,
                    hypervisor=hypervisor,
                    mac_address=mac_address(name),
                    vsock_cid=self.store.vms.next_vsock_cid(),
                    cpu_cores=config["resources"]["cpu_cores"],
                    memory_mb=config["resources"]["memory_mb"],
                    runtime_dir=self.settings.runtime_dir / name,
                    kernel_cmdline=config["kernel_cmdline"],
                    ip_address=ip,
                )
                self.store.configs.put(record.id, config)
                if ip is not None:
                    self.store.ips.lease(record.id, ip)
            self._emit(EventType.VM_CREATED, record, "vm record created")
            try:
                self._boot(name)
            except BaseException as err:
                self._discard(name, f"create failed: {err}")
                raise
            return self.get_vm(name)

    def _lease_address(self, name: str) -> str:
        """Ask the ``volant_allocate_ip`` hook for a free address of the subnet (inside the transaction)."""
        subnet = self.settings.subnet
        taken = frozenset(lease.ip_address for lease in self.store.ips.leased())
        reserved = frozenset(
            {str(subnet.network_address), str(subnet.broadcast_address), str(self.settings.host_ip)}
        )
        ip = self.host.hook.volant_allocate_ip(vm_name=name, subnet=subnet, taken=taken, reserved=reserved)
        if ip is None:
            raise ConflictError(f"no free IP address left in {subnet}; delete a VM or widen VOLANT_SUBNET")
        if ipaddress.IPv4Address(ip) not in subnet or ip in taken or ip in reserved:
            raise PluginError(f"volant_allocate_ip returned {ip}, which is not free in {subnet}")
        return ip

    # --------------------------------------------------------- start and stop

    def start_vm(self, name: str) -> VMView:
        """Boot a stopped, crashed or pending VM."""
        with self._locks(name):
            record = self.store.vms.get_by_name(name)
            if name in self._handles or record.status in ACTIVE_STATES:
                raise ConflictError(f"vm {name!r} is {record.status} already; stop it first")
            try:
                self._boot(name)
            except VolantError as err:
                self._set_status(name, VMStatus.CRASHED, EventType.VM_CRASHED, f"start failed: {err.message}")
                raise
            return self.get_vm(name)

    def stop_vm(self, name: str) -> VMView:
        """Power the guest off: gracefully first, killed after the stop timeout. Idempotent."""
        with self._locks(name):
            self._stop_locked(name)
            return self.get_vm(name)

    def restart_vm(self, name: str) -> VMView:
        """Stop (if running), then start."""
        with self._locks(name):
            self._stop_locked(name)
            return self.start_vm(name)

    def delete_vm(self, name: str) -> None:
        """Stop the VM if it runs and remove it: row, lease, config, runtime directory, host resources."""
        with self._locks(name):
            self.store.vms.get_by_name(name)
            self._stop_locked(name)
            self._discard(name, "vm deleted")

    def shutdown(self) -> None:
        """Stop watching VMs (they keep running and are re-adopted at the next start)."""
        self._handles.clear()

    # ---------------------------------------------------------------- recover

    def recover(self) -> None:
        """After a daemon start: re-adopt VMMs that still run, mark the others crashed."""
        for record in self.store.vms.list():
            if record.status not in ACTIVE_STATES:
                continue
            with self._locks(record.name):
                launcher = self._launcher(record.hypervisor)
                instance = launcher.adopt(self._adopt_spec(record), record.pid) if record.pid else None
                if instance is None:
                    self._mode_of(record).detach(self._view(record))
                    self._set_status(
                        record.name,
                        VMStatus.CRASHED,
                        EventType.VM_CRASHED,
                        "the VMM was gone when volantd started",
                        pid=None,
                    )
                    continue
                self._watch(record.name, instance)

    # ----------------------------------------------------------------- internals

    def _boot(self, name: str) -> None:
        """Launch the VMM of ``name`` (lock held); the supervisor thread takes it from there."""
        record = self.store.vms.get_by_name(name)
        view = self._view(record)
        manifest = parse_manifest(view.config["manifest"])
        launcher = self._launcher(record.hypervisor)
        mode = self._mode_of(record)
        self._set_status(name, VMStatus.STARTING, EventType.VM_STARTING, "booting")
        plan = self.boot_media.prepare(name, record.runtime_dir, manifest, record.kernel_cmdline)
        attachment = mode.attach(view)
        try:
            spec = LaunchSpec(
                name=name,
                vm_dir=record.runtime_dir,
                cpu_cores=record.cpu_cores,
                memory_mb=record.memory_mb,
                kernel=plan.kernel,
                initramfs=plan.initramfs,
                kernel_args=plan.kernel_args + attachment.kernel_args,
                nics=attachment.nics,
                vsock_cid=record.vsock_cid,
            )
            spec = self._with_additions(view, spec)
            instance = launcher.launch(spec)
        except BaseException:
            mode.detach(view)
            raise
        self.store.vms.update(
            name,
            pid=instance.pid,
            accelerator=instance.accelerator,
            console_socket=instance.console_socket,
            kernel_cmdline=record.kernel_cmdline,
        )
        self._watch(name, instance)
        self.host.hook.volant_vm_launched(vm=self.get_vm(name), instance=instance)

    def _with_additions(self, view: VMView, spec: LaunchSpec) -> LaunchSpec:
        """Merge what ``volant_prepare_launch`` implementations add."""
        for add in self.host.hook.volant_prepare_launch(vm=view, spec=spec):
            if add is None:
                continue
            if not isinstance(add, LaunchAdditions):
                raise PluginError(f"volant_prepare_launch must return LaunchAdditions or None, got {add!r}")
            spec = replace(
                spec,
                kernel_args=spec.kernel_args + add.kernel_args,
                disks=spec.disks + add.disks,
                devices=spec.devices + add.devices,
                extra_args=spec.extra_args + add.extra_args,
            )
        return spec

    def _watch(self, name: str, instance: Instance) -> None:
        handle = _Handle(instance, AgentClient(instance.agent_channel))
        self._handles[name] = handle
        threading.Thread(target=self._supervise, args=(name, handle), name=f"vm-{name}", daemon=True).start()

    def _supervise(self, name: str, handle: _Handle) -> None:
        """Wait for the agent (-> running), then for the VMM to exit (-> stopped or crashed)."""
        try:
            health = handle.client.wait_healthy(self.settings.boot_timeout, alive=handle.instance.alive)
        except AgentError as err:
            with self._locks(name):
                if self._handles.get(name) is handle and not handle.stopping:
                    handle.failure = f"guest agent never became healthy: {err.message}"
                    handle.instance.kill()
        else:
            with self._locks(name):
                if self._handles.get(name) is handle and not handle.stopping:
                    self._set_status(
                        name, VMStatus.RUNNING, EventType.VM_RUNNING, "agent healthy", agent=health
                    )
        status = handle.instance.wait()
        with self._locks(name):
            if self._handles.get(name) is not handle or handle.stopping:
                return
            del self._handles[name]
            record = self.store.vms.get_by_name(name)
            self._mode_of(record).detach(self._view(record))
            if handle.failure or status != 0:
                reason = handle.failure or f"VMM exited with status {status}"
                self._set_status(
                    name, VMStatus.CRASHED, EventType.VM_CRASHED, reason, pid=None, exit_status=status
                )
            else:
                self._set_status(name, VMStatus.STOPPED, EventType.VM_STOPPED, "guest powered off", pid=None)
            self.host.hook.volant_vm_stopped(vm=self.get_vm(name), exit_status=status)

    def _stop_locked(self, name: str) -> None:
        handle = self._handles.get(name)
        record = self.store.vms.get_by_name(name)
        if handle is None:
            if record.status in ACTIVE_STATES:
                self._set_status(name, VMStatus.STOPPED, EventType.VM_STOPPED, "vm stopped", pid=None)
            return
        handle.stopping = True
        self._set_status(name, VMStatus.STOPPING, EventType.VM_STOPPING, "powering off")
        status = handle.instance.stop(self.settings.stop_timeout)
        self._handles.pop(name, None)
        self._mode_of(record).detach(self._view(record))
        self._set_status(name, VMStatus.STOPPED, EventType.VM_STOPPED, "vm stopped", pid=None)
        self.host.hook.volant_vm_stopped(vm=self.get_vm(name), exit_status=status)

    def _discard(self, name: str, message: str) -> None:
        """Remove every trace of ``name`` (its VMM, if any, is already gone)."""
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.stopping = True
            handle.instance.kill()
        record = self.store.vms.get_by_name(name)
        view = self._view(record)
        self._mode_of(record).detach(view)
        shutil.rmtree(record.runtime_dir, ignore_errors=True)
        self.store.vms.delete(name)
        self._emit(EventType.VM_DELETED, record, message)
        self.host.hook.volant_vm_deleted(vm=view)

    def _set_status(
        self, name: str, status: VMStatus, event: EventType, message: str, **changes: Any
    ) -> None:
        extra = {k: changes.pop(k) for k in ("agent", "exit_status") if k in changes}
        record = self.store.vms.update(name, status=status, status_reason=_reason(status, message), **changes)
        self._emit(event, record, message, **extra)

    def _emit(self, event: EventType, record: VMRecord, message: str, **data: Any) -> None:
        self.events.publish(
            Event(
                type=event,
                name=record.name,
                status=record.status,
                message=message,
                data={"pid": record.pid, "ip_address": record.ip_address, **data},
            )
        )

    def _launcher(self, name: str, *, field: str | None = None) -> Launcher:
        with self._factory_lock:
            if name not in self._launchers:
                descriptor = self.registries.hypervisors.get(name, field=field)
                problem = descriptor.available() if descriptor.available else None
                if problem:
                    raise ConflictError(
                        f"hypervisor {name!r} cannot run on this host: {problem}", field=field
                    )
                self._launchers[name] = descriptor.factory()
            return self._launchers[name]

    def _mode_of(self, record: VMRecord) -> NetworkMode:
        mode_name = self.store.configs.current(record.id).config["network"]["mode"]
        with self._factory_lock:
            if mode_name not in self._modes:
                self._modes[mode_name] = self.registries.network_modes.get(mode_name).factory()
            return self._modes[mode_name]

    def _adopt_spec(self, record: VMRecord) -> LaunchSpec:
        kernel, _ = self.boot_media.base_image()
        return LaunchSpec(
            name=record.name,
            vm_dir=record.runtime_dir,
            cpu_cores=record.cpu_cores,
            memory_mb=record.memory_mb,
            kernel=kernel,
        )

    def _view(self, record: VMRecord) -> VMView:
        config = self.store.configs.current(record.id).config
        return VMView(
            name=record.name,
            status=VMStatus(record.status),
            runtime=record.runtime,
            plugin=record.plugin,
            hypervisor=record.hypervisor,
            network_mode=config["network"]["mode"],
            cpu_cores=record.cpu_cores,
            memory_mb=record.memory_mb,
            mac_address=record.mac_address,
            vsock_cid=record.vsock_cid,
            runtime_dir=record.runtime_dir,
            kernel_cmdline=record.kernel_cmdline,
            ip_address=record.ip_address,
            pid=record.pid,
            accelerator=record.accelerator,
            status_reason=record.status_reason,
            console_socket=str(record.console_socket) if record.console_socket else None,
            created_at=record.created_at.isoformat(),
            updated_at=record.updated_at.isoformat(),
            config=config,
        )

    def _draft_view(self, name: str, config: dict[str, Any]) -> VMView:
        """The view ``volant_vm_validate`` sees before anything is written."""
        return VMView(
            name=name,
            status=VMStatus.PENDING,
            runtime=config["runtime"],
            plugin=config["plugin"],
            hypervisor=config["hypervisor"],
            network_mode=config["network"]["mode"],
            cpu_cores=config["resources"]["cpu_cores"],
            memory_mb=config["resources"]["memory_mb"],
            mac_address=mac_address(name),
            vsock_cid=0,
            runtime_dir=self.settings.runtime_dir / name,
            kernel_cmdline=config["kernel_cmdline"],
            config=config,
        )


def _reason(status: VMStatus, message: str) -> str | None:
    """Only states that need explaining keep a reason."""
    return message if status in (VMStatus.CRASHED, VMStatus.STOPPED) and message != "vm stopped" else None
