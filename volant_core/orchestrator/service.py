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
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from volant_core.agent_client import AgentClient
from volant_core.descriptors import LaunchAdditions, NetworkMode
from volant_core.errors import (
    AgentError,
    ConflictError,
    NotFoundError,
    PluginError,
    ValidationError,
    VolantError,
)
from volant_core.events import Event, EventBus, EventType
from volant_core.launch import Instance, LaunchSpec
from volant_core.orchestrator import health
from volant_core.orchestrator.backends import Backends
from volant_core.orchestrator.bootmedia import BootMedia
from volant_core.orchestrator.console import ConsoleAttachments, ConsoleSession
from volant_core.orchestrator.identity import mac_address
from volant_core.orchestrator.listing import VMQuery
from volant_core.orchestrator.locks import NamedLocks
from volant_core.orchestrator.requests import CreateVMRequest
from volant_core.orchestrator.vmconfig import (
    ConfigPatch,
    VMConfig,
    apply_patch,
    needs_restart,
    parse_patch,
    validate_config,
)
from volant_core.plugins import PluginHost
from volant_core.registry import Registries
from volant_core.runtimes import RuntimeCatalog
from volant_core.settings import Settings
from volant_core.store import ConfigRecord, Store, VMRecord
from volant_core.vm import ACTIVE_STATES, VMStatus, VMView

log = logging.getLogger(__name__)

#: A VM healthy for this long (seconds) has its count of automatic restarts reset.
STABLE_AFTER_S = 60.0


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
        self._restarts: dict[str, int] = {}  # consecutive automatic restarts, by VM
        self.backends = Backends(settings, registries)
        self._consoles = ConsoleAttachments()

    # ------------------------------------------------------------------ reads

    def list_vms(self) -> list[VMView]:
        """Every VM, oldest first."""
        return self._views(self.store.vms.list())

    def find_vms(self, query: VMQuery) -> tuple[list[VMView], int]:
        """The page of VMs ``query`` selects, and how many matched before paging."""
        page, total = query.apply(self.store.vms.list())
        return self._views(page), total

    def get_vm(self, name: str) -> VMView:
        """One VM; NotFoundError if there is none."""
        return self._view(self.store.vms.get_by_name(name))

    def console_log(self, name: str) -> Path | None:
        """The file holding the VM's console output (None before its first boot)."""
        return self.store.vms.get_by_name(name).console_log

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

    def open_console(self, name: str) -> ConsoleSession:
        """Attach to a running VM's serial console (one session at a time).

        ConflictError when the VM is not running, its hypervisor has no
        console socket, or another session is attached.
        """
        record = self.store.vms.get_by_name(name)
        if record.status != VMStatus.RUNNING or name not in self._handles:
            raise ConflictError(
                f"vm {name!r} is {record.status}; its console is there only while it runs "
                f"(start it with `volar vms start {name}`)"
            )
        if record.console_socket is None:
            raise ConflictError(f"vm {name!r} has no serial console: its hypervisor does not offer one")
        return self._consoles.attach(name, record.console_socket)

    # ---------------------------------------------------------------- create

    def create_vm(self, request: CreateVMRequest, *, group_id: int | None = None) -> VMView:
        """Record a VM and start booting it; everything is undone if any step fails.

        ``group_id`` makes it a member of that deployment.
        """
        entry = self.catalog.get_enabled(request.plugin_name())
        config = apply_patch(VMConfig.from_manifest(entry.name, entry.manifest), request.overrides())
        if request.config is not None:
            config = apply_patch(config, request.config)
        config = self.backends.resolved(config)
        name = request.name
        with self._locks(name):
            if self._exists(name):  # checked first: the UNIQUE error could name the MAC instead
                raise ConflictError(f"vm {name!r} already exists; delete it first", field="name")
            self._validate(name, config, None)
            with self.store.transaction():
                needs_ip = self.backends.mode(self.backends.network_of(config).mode).needs_ip
                ip = self._lease_address(name) if needs_ip else None
                record = self.store.vms.create(
                    name=name,
                    status=VMStatus.PENDING,
                    runtime=config.runtime,
                    plugin=entry.name,
                    hypervisor=self.backends.hypervisor_of(config),
                    mac_address=mac_address(name),
                    vsock_cid=self.store.vms.next_vsock_cid(),
                    cpu_cores=config.resources.cpu_cores,
                    memory_mb=config.resources.memory_mb,
                    runtime_dir=self.settings.runtime_dir / name,
                    kernel_cmdline=config.kernel_cmdline,
                    ip_address=ip,
                    group_id=group_id,
                )
                self.store.configs.put(record.id, config.to_json())
                if ip is not None:
                    self.store.ips.lease(record.id, ip)
            self._emit(EventType.VM_CREATED, record, "vm record created")
            try:
                self._boot(name)
            except BaseException as err:
                self._discard(name, f"create failed: {err}")
                raise
            return self.get_vm(name)

    def _exists(self, name: str) -> bool:
        try:
            self.store.vms.get_by_name(name)
        except NotFoundError:
            return False
        return True

    # ------------------------------------------------------------ deployment members

    def validate_template(self, template: Mapping[str, Any]) -> dict[str, Any]:
        """Check a deployment's member configuration (a config patch naming its plugin); the stored form."""
        patch = parse_patch(template)
        if not patch.plugin:
            raise ValidationError(
                "config.plugin: required; name the runtime manifest to run", field="config.plugin"
            )
        entry = self.catalog.get(patch.plugin)
        self.backends.resolved(apply_patch(VMConfig.from_manifest(entry.name, entry.manifest), patch))
        return patch.model_dump(mode="json", exclude_unset=True)

    def create_member(self, name: str, template: Mapping[str, Any], group_id: int) -> VMView:
        """Create VM ``name`` from a deployment's member configuration."""
        return self.create_vm(CreateVMRequest(name=name, config=parse_patch(template)), group_id=group_id)

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

    # ---------------------------------------------------------- configuration

    def get_config(self, name: str) -> ConfigRecord:
        """The current configuration version of VM ``name``."""
        with self._locks(name):
            return self.store.configs.current(self.store.vms.get_by_name(name).id)

    def config_history(self, name: str, limit: int | None = None) -> list[ConfigRecord]:
        """The configuration versions of VM ``name``, newest first, at most ``limit`` (None: all)."""
        with self._locks(name):
            return self.store.configs.history(self.store.vms.get_by_name(name).id, limit)

    def patch_config(self, name: str, patch: ConfigPatch) -> ConfigRecord:
        """Merge ``patch`` into the current configuration and store the result as the next version.

        The VM is not restarted: it shows ``restart_pending`` until its next start applies it.
        """
        with self._locks(name):
            record = self.store.vms.get_by_name(name)
            current = VMConfig.model_validate(self.store.configs.current(record.id).config)
            return self._store_config(record, apply_patch(current, patch), "configuration changed")

    def rollback_config(self, name: str, version: int) -> ConfigRecord:
        """Store configuration ``version`` again as the next version (the history is never rewritten)."""
        with self._locks(name):
            record = self.store.vms.get_by_name(name)
            try:
                earlier = self.store.configs.get_version(record.id, version)
            except NotFoundError:
                raise NotFoundError(
                    f"version: vm {name!r} has no configuration version {version}; "
                    f"see GET /api/v1/vms/{name}/config/history",
                    field="version",
                ) from None
            message = f"configuration rolled back to version {version}"
            return self._store_config(record, validate_config(earlier.config), message)

    def _store_config(self, record: VMRecord, config: VMConfig, message: str) -> ConfigRecord:
        """Store ``config`` as the VM's next version unless it equals the current one (lock held)."""
        config = self.backends.resolved(config)
        self._validate(record.name, config, record)
        current = self.store.configs.current(record.id)
        document = config.to_json()
        if document == current.config:
            return current
        stored = self.store.configs.put(record.id, document)
        pending = self._view(record).restart_pending
        self._emit(
            EventType.VM_CONFIG_CHANGED, record, message, version=stored.version, restart_pending=pending
        )
        return stored

    def _validate(self, name: str, config: VMConfig, record: VMRecord | None) -> None:
        """Refuse ``config`` when its hypervisor or network mode is not installed, or a
        ``volant_vm_validate`` implementation rejects it.
        """
        self.backends.launcher(self.backends.hypervisor_of(config), field="hypervisor")
        self.backends.mode(self.backends.network_of(config).mode, field="network.mode")
        self.host.hook.volant_vm_validate(vm=self._draft_view(name, config, record))

    # --------------------------------------------------------- start and stop

    def start_vm(self, name: str) -> VMView:
        """Boot a stopped, crashed or pending VM."""
        with self._locks(name):
            record = self.store.vms.get_by_name(name)
            if name in self._handles or record.status in ACTIVE_STATES:
                raise ConflictError(f"vm {name!r} is {record.status} already; stop it first")
            self._restarts.pop(name, None)
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
        """After a daemon start: re-adopt VMMs that still run; mark the others crashed, release what
        they held and restart them if their policy says so.
        """
        for record in self.store.vms.list():
            if record.status not in ACTIVE_STATES:
                continue
            with self._locks(record.name):
                launcher = self.backends.launcher(record.hypervisor)
                instance = launcher.adopt(self._adopt_spec(record), record.pid) if record.pid else None
                if instance is None:
                    self._network_mode(record).detach(self._view(record))
                    self._set_status(
                        record.name,
                        VMStatus.CRASHED,
                        EventType.VM_CRASHED,
                        "the VMM was gone when volantd started",
                        pid=None,
                    )
                    self._schedule_restart(record.name)
                    continue
                self._watch(record.name, instance)

    # ----------------------------------------------------------------- internals

    def _boot(self, name: str) -> None:
        """Launch the VMM of ``name`` from its current configuration (lock held); the supervisor
        thread takes it from there.
        """
        stored = self.store.configs.current(self.store.vms.get_by_name(name).id)
        config = VMConfig.model_validate(stored.config)
        launcher = self.backends.launcher(self.backends.hypervisor_of(config))
        record = self._apply_config(name, config, stored.version)
        view = self._view(record)
        mode = self._network_mode(record)
        self._set_status(name, VMStatus.STARTING, EventType.VM_STARTING, "booting")
        manifest = config.boot_manifest()
        plan = self.boot_media.prepare(name, record.runtime_dir, manifest, config.kernel_cmdline)
        if config.kernel_override is not None:
            kernel = self.boot_media.fetch(config.kernel_override, None, field="kernel_override")
            plan = replace(plan, kernel=kernel)
        attachment = mode.attach(view)
        try:
            spec = LaunchSpec(
                name=name,
                vm_dir=record.runtime_dir,
                cpu_cores=config.resources.cpu_cores,
                memory_mb=config.resources.memory_mb,
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
            console_log=instance.console_log,
        )
        self._watch(name, instance)
        self.host.hook.volant_vm_launched(vm=self.get_vm(name), instance=instance)

    def _apply_config(self, name: str, config: VMConfig, version: int) -> VMRecord:
        """Make the VM row describe the configuration about to boot, leasing or releasing the VM's
        address when its network mode changed whether it needs one.
        """
        with self.store.transaction():
            record = self.store.vms.get_by_name(name)
            mode = self.backends.mode(self.backends.network_of(config).mode, field="network.mode")
            needs_ip = mode.needs_ip
            ip = record.ip_address
            if needs_ip and ip is None:
                ip = self._lease_address(name)
                self.store.ips.lease(record.id, ip)
            elif not needs_ip and ip is not None:
                self.store.ips.release(record.id)
                ip = None
            return self.store.vms.update(
                name,
                runtime=config.runtime,
                hypervisor=self.backends.hypervisor_of(config),
                cpu_cores=config.resources.cpu_cores,
                memory_mb=config.resources.memory_mb,
                kernel_cmdline=config.kernel_cmdline,
                ip_address=ip,
                config_version=version,
            )

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
        """Wait for the agent (-> running), watch its health, then handle the VMM's exit."""
        status = None
        if self._await_agent(name, handle):
            verdict = health.watch(
                handle.instance,
                handle.client,
                interval=self.settings.health_interval,
                failures_allowed=self.settings.health_failures,
                stable_after=STABLE_AFTER_S,
                on_stable=lambda: self._restarts.pop(name, None),
            )
            status = verdict.exit_status
            if verdict.reason:
                self._fail(name, handle, f"workload stopped answering: {verdict.reason}")
        if status is None:
            status = handle.instance.wait()
        self._vmm_exited(name, handle, status)

    def _await_agent(self, name: str, handle: _Handle) -> bool:
        """Wait until kestrel is healthy and mark the VM running; False if it never got there."""
        try:
            answer = handle.client.wait_healthy(self.settings.boot_timeout, alive=handle.instance.alive)
        except AgentError as err:
            self._fail(name, handle, f"guest agent never became healthy: {err.message}")
            return False
        with self._locks(name):
            if self._handles.get(name) is not handle or handle.stopping:
                return False
            if self.store.vms.get_by_name(name).status != VMStatus.RUNNING:  # adopted VMs already are
                self._set_status(name, VMStatus.RUNNING, EventType.VM_RUNNING, "agent healthy", agent=answer)
        return True

    def _fail(self, name: str, handle: _Handle, reason: str) -> None:
        """Kill a VMM whose guest is not healthy; its exit is then reported as a crash with ``reason``."""
        with self._locks(name):
            if self._handles.get(name) is handle and not handle.stopping:
                handle.failure = reason
                handle.instance.kill()

    def _vmm_exited(self, name: str, handle: _Handle, status: int | None) -> None:
        """Record the end of a VMM nobody asked to stop: ``stopped`` after a poweroff, else ``crashed``."""
        with self._locks(name):
            if self._handles.get(name) is not handle or handle.stopping:
                return
            del self._handles[name]
            record = self.store.vms.get_by_name(name)
            self._network_mode(record).detach(self._view(record))
            crashed = bool(handle.failure) or status != 0
            if crashed:
                reason = handle.failure or f"VMM exited with status {status}"
                self._set_status(
                    name, VMStatus.CRASHED, EventType.VM_CRASHED, reason, pid=None, exit_status=status
                )
            else:
                self._set_status(name, VMStatus.STOPPED, EventType.VM_STOPPED, "guest powered off", pid=None)
            self.host.hook.volant_vm_stopped(vm=self.get_vm(name), exit_status=status)
            if crashed:
                self._schedule_restart(name)

    def _schedule_restart(self, name: str) -> None:
        """Restart a crashed VM later if its policy says so (lock held)."""
        record = self.store.vms.get_by_name(name)
        policy = validate_config(self.store.configs.current(record.id).config).restart_policy
        attempt = self._restarts.get(name, 0)
        delay = policy.delay(attempt)
        if delay is None:
            return
        self._restarts[name] = attempt + 1
        timer = threading.Timer(delay, self._restart_crashed, args=(name, attempt + 1))
        timer.daemon = True
        timer.start()

    def _restart_crashed(self, name: str, attempt: int) -> None:
        """Boot a VM that is still crashed (nobody started, stopped or deleted it meanwhile)."""
        with self._locks(name):
            try:
                record = self.store.vms.get_by_name(name)
            except NotFoundError:
                return
            if (
                record.status != VMStatus.CRASHED
                or name in self._handles
                or self._restarts.get(name) != attempt
            ):
                return
            log.info("restarting crashed vm %s (attempt %d)", name, attempt)
            try:
                self._boot(name)
            except VolantError as err:
                self._set_status(
                    name, VMStatus.CRASHED, EventType.VM_CRASHED, f"restart failed: {err.message}"
                )
                self._schedule_restart(name)

    def _stop_locked(self, name: str) -> None:
        self._restarts.pop(name, None)  # an explicit stop ends any pending automatic restart
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
        self._network_mode(record).detach(self._view(record))
        self._set_status(
            name, VMStatus.STOPPED, EventType.VM_STOPPED, "vm stopped", pid=None, exit_status=status
        )
        self.host.hook.volant_vm_stopped(vm=self.get_vm(name), exit_status=status)

    def _discard(self, name: str, message: str) -> None:
        """Remove every trace of ``name`` (its VMM, if any, is already gone)."""
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.stopping = True
            handle.instance.kill()
        record = self.store.vms.get_by_name(name)
        view = self._view(record)
        self._network_mode(record).detach(view)
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

    def _network_mode(self, record: VMRecord) -> NetworkMode:
        """The network mode the VM was last booted with."""
        return self.backends.network_mode(self._view(record).network_mode)

    def _adopt_spec(self, record: VMRecord) -> LaunchSpec:
        kernel, _ = self.boot_media.base_image()
        return LaunchSpec(
            name=record.name,
            vm_dir=record.runtime_dir,
            cpu_cores=record.cpu_cores,
            memory_mb=record.memory_mb,
            kernel=kernel,
        )

    def _applied(self, record: VMRecord, current: ConfigRecord) -> ConfigRecord:
        """The configuration the VMM was last booted with (``current`` before the first boot)."""
        if record.config_version in (None, current.version):
            return current
        return self.store.configs.get_version(record.id, record.config_version)

    def _views(self, records: list[VMRecord]) -> list[VMView]:
        """:meth:`_view` of each record, their configurations read in two queries for all.

        A VM deleted since ``records`` were read (it has no configuration any more) is left out.
        """
        currents = self.store.configs.current_many([r.id for r in records])
        records = [r for r in records if r.id in currents]
        stale = {
            r.id: r.config_version
            for r in records
            if r.config_version is not None and r.config_version != currents[r.id].version
        }
        applied = self.store.configs.versions(stale)
        return [self._view(r, currents[r.id], applied.get(r.id, currents[r.id])) for r in records]

    def _view(
        self, record: VMRecord, current: ConfigRecord | None = None, applied: ConfigRecord | None = None
    ) -> VMView:
        """The view of ``record``; its ``current`` and ``applied`` configurations are read if not given."""
        if current is None:
            current = self.store.configs.current(record.id)
        if applied is None:
            applied = self._applied(record, current)
        return VMView(
            name=record.name,
            status=VMStatus(record.status),
            runtime=record.runtime,
            plugin=record.plugin,
            hypervisor=record.hypervisor,
            network_mode=self.backends.network_of(VMConfig.model_validate(applied.config)).mode,
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
            config_version=current.version,
            restart_pending=record.status in ACTIVE_STATES and needs_restart(applied.config, current.config),
            config=current.config,
        )

    def _draft_view(self, name: str, config: VMConfig, record: VMRecord | None) -> VMView:
        """The view ``volant_vm_validate`` sees: the VM (a new one when ``record`` is None) as
        ``config`` would boot it, before anything is written.
        """
        booted: dict[str, Any] = {
            "runtime": config.runtime,
            "plugin": config.plugin,
            "hypervisor": self.backends.hypervisor_of(config),
            "network_mode": self.backends.network_of(config).mode,
            "cpu_cores": config.resources.cpu_cores,
            "memory_mb": config.resources.memory_mb,
            "kernel_cmdline": config.kernel_cmdline,
            "config": config.to_json(),
        }
        if record is not None:
            return replace(self._view(record), **booted)
        return VMView(
            name=name,
            status=VMStatus.PENDING,
            mac_address=mac_address(name),
            vsock_cid=0,
            runtime_dir=self.settings.runtime_dir / name,
            **booted,
        )


def _reason(status: VMStatus, message: str) -> str | None:
    """Only states that need explaining keep a reason."""
    return message if status in (VMStatus.CRASHED, VMStatus.STOPPED) and message != "vm stopped" else None
