"""The orchestrator: keeps the database, the VMM processes and the host consistent.

States: ``pending -> starting -> running -> stopping -> stopped``, and
``crashed`` from starting or running. A VM is ``running`` when kestrel answered
its health check, not when the VMM process started. Each state change is
written and published as exactly one event (:mod:`.transitions`). Operations
on one VM hold that VM's lock.

:class:`Orchestrator` is the VM lifecycle: create, start, stop, delete and
re-adoption at daemon start. It composes the parts with a job of their own:
views of stored VMs (:mod:`.views`), configuration versions
(:mod:`.configuration`), booting a VM and adopting its VMM again (:mod:`.boot`)
and the supervision of running VMMs (:mod:`.supervision`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from volant_core.agent_client import AgentClient
from volant_core.errors import ConflictError, LimitError, NotFoundError, ValidationError, VolantError
from volant_core.events import EventBus, EventType
from volant_core.manifest import Manifest
from volant_core.orchestrator import vmdirs
from volant_core.orchestrator.admission import Admission
from volant_core.orchestrator.backends import Backends
from volant_core.orchestrator.boot import Booter
from volant_core.orchestrator.bootmedia import BootMedia
from volant_core.orchestrator.configuration import Configurations
from volant_core.orchestrator.console import ConsoleAttachments, ConsoleSession
from volant_core.orchestrator.context import OrchestratorContext
from volant_core.orchestrator.health import HealthBoard
from volant_core.orchestrator.hints import until_running, until_stopped
from volant_core.orchestrator.identity import mac_address
from volant_core.orchestrator.listing import VMQuery
from volant_core.orchestrator.locks import NamedLocks
from volant_core.orchestrator.media_cache import MediaCache
from volant_core.orchestrator.publishing import PortPublisher
from volant_core.orchestrator.requests import CreateVMRequest
from volant_core.orchestrator.requirements import check_requirements
from volant_core.orchestrator.resources import HostResources
from volant_core.orchestrator.supervision import Supervisor
from volant_core.orchestrator.transitions import Transitions
from volant_core.orchestrator.views import VMViews
from volant_core.orchestrator.vmconfig import ConfigPatch, VMConfig, apply_patch, parse_patch
from volant_core.plugins import Plugins
from volant_core.portmap import PortTable
from volant_core.runtimes import RuntimeCatalog
from volant_core.settings import Settings
from volant_core.store import ConfigRecord, Store, VMRecord
from volant_core.vm import ACTIVE_STATES, VMStatus, VMView

log = logging.getLogger(__name__)


class Orchestrator:
    """VM lifecycle on top of the store, the plugin registries and the hypervisor.

    Configuration versions are :class:`Configurations`' job, launching VMMs the :class:`Booter`'s and
    running VMMs the :class:`Supervisor`'s; the methods here that read or change a configuration hand
    over to the first.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        plugins: Plugins,
        catalog: RuntimeCatalog,
        events: EventBus,
    ) -> None:
        self.settings = settings
        self.store = store
        self.plugins = plugins
        self.registries = plugins.registries
        self.catalog = catalog
        self.events = events
        self.boot_media = BootMedia(
            settings, self.registries.boot_sources, lambda line: log.info("guest image: %s", line)
        )
        self.media_cache = MediaCache(store, self.boot_media.cache)
        self._locks = NamedLocks(threading.RLock)
        self.backends = Backends(settings, plugins)
        self._consoles = ConsoleAttachments()
        health = HealthBoard()
        self._views = VMViews(store, self.backends, health)
        self._transitions = Transitions(store, events)
        self._admission = Admission(settings, store)
        context = OrchestratorContext(
            settings=settings,
            store=store,
            plugins=plugins,
            backends=self.backends,
            locks=self._locks,
            views=self._views,
            transitions=self._transitions,
            admission=self._admission,
        )
        self._configs = Configurations(context)
        self._ports = PortPublisher(PortTable())
        self._resources = HostResources(context, self.boot_media, self._ports)
        # The booter hands what it launches to the supervisor, which boots crashed VMs again and
        # powers unhealthy ones off when their policy says so.
        self._supervisor = Supervisor(
            context,
            self._resources,
            health,
            boot=lambda name: self._booter.boot(name),
            power_off=lambda name, message: self._stop_locked(name, message=message),
        )
        self._booter = Booter(context, self._resources, watch=self._supervisor.watch)

    # ------------------------------------------------------------------ reads

    @property
    def automatic_restarts(self) -> int:
        """How many automatic restarts (restart policy, ``on_unhealthy: restart``) this daemon began."""
        return self._supervisor.restarts.value

    def list_vms(self) -> list[VMView]:
        """Every VM, oldest first."""
        return self._views.views_of(self.store.vms.list())

    def find_vms(self, query: VMQuery, batch: int) -> tuple[Iterator[list[VMView]], int]:
        """The page of VMs ``query`` selects, in batches of at most ``batch`` VMs, and how many matched
        before paging. Each batch's views are built when it is reached: memory holds one batch's.
        """
        page, total = query.apply(self.store.vms.list())
        batches = (self._views.views_of(page[start : start + batch]) for start in range(0, len(page), batch))
        return batches, total

    def get_vm(self, name: str) -> VMView:
        """One VM; NotFoundError if there is none."""
        return self._views.get(name)

    def console_log(self, name: str) -> Path | None:
        """The file holding the VM's console output (None before its first boot)."""
        return self.store.vms.get_by_name(name).console_log

    def agent(self, name: str) -> AgentClient:
        """The client of a running VM's agent; ConflictError when it is not running."""
        status = self.store.vms.status_of(name)  # every proxied request asks: one column, not the record
        client = self._supervisor.client(name)
        if client is None or status != VMStatus.RUNNING:
            raise ConflictError(
                f"vm {name!r} is {status}; its agent answers only while it is running "
                f"({until_running(name, status)})"
            )
        return client

    def open_console(self, name: str) -> ConsoleSession:
        """Attach to the serial console of a starting or running VM (one session at a time): a
        console is there as soon as the VMM is, so a boot that hangs can be watched.

        ConflictError when the VM is in another state, its hypervisor has no
        console socket, or another session is attached.
        """
        record = self.store.vms.get_by_name(name)
        consoled = record.status in (VMStatus.STARTING, VMStatus.RUNNING)
        if not consoled or not self._supervisor.watches(name):
            raise ConflictError(
                f"vm {name!r} is {record.status}; its console is there only while it starts or runs "
                f"({until_running(name, record.status)})"
            )
        if record.console_socket is None:
            raise ConflictError(f"vm {name!r} has no serial console: its hypervisor does not offer one")
        return self._consoles.attach(name, record.console_socket)

    # ---------------------------------------------------------------- create

    def create_vm(self, request: CreateVMRequest, *, group_id: int | None = None) -> VMView:
        """Record a VM and start booting it; everything is undone if any step fails.

        When its boot media must be downloaded, the VM is returned ``pending`` and boots in a thread
        of its own (progress events while it is ``starting``; ``crashed`` with the reason when the
        boot fails), so the request is not held open for the download (ADR 0036).
        ``group_id`` makes it a member of that deployment; members always boot here (the deployment
        controller's own thread creates them and tracks their boots).
        """
        entry = self.catalog.get_enabled(request.runtime_name())
        config = apply_patch(VMConfig.from_manifest(entry.name, entry.manifest), request.overrides())
        if request.config is not None:
            config = apply_patch(config, request.config)
        config = self.backends.resolved(config)
        name = request.name
        with self._locks(name):
            if self._exists(name):  # checked first: the UNIQUE error could name the MAC instead
                raise ConflictError(f"vm {name!r} already exists; delete it first", field="name")
            self._configs.validate(name, config, None)
            with self._admission.reserve(name, config.resources), self.store.transaction():
                self._admission.check_count(name)
                needs_ip = self.backends.mode(self.backends.network_of(config).mode).needs_ip
                ip = self._booter.lease_address(name) if needs_ip else None
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
                stored = self.store.configs.put(record.id, config.to_json())
                if ip is not None:
                    self.store.ips.lease(record.id, ip)
            self._transitions.emit(EventType.VM_CREATED, record, "vm record created")
            if group_id is None and self.boot_media.must_download(config.boot_artifacts()):
                threading.Thread(
                    target=self._boot_created, args=(name,), name=f"boot {name}", daemon=True
                ).start()
                return self.get_vm(name)
            try:
                return self._booter.boot(name, created=(record, stored))
            except BaseException as err:
                self._discard(name, f"create failed: {err}")
                raise

    def _boot_created(self, name: str) -> None:
        """Boot the VM :meth:`create_vm` answered ``pending`` (unless it was deleted or started
        since); a failure leaves it ``crashed`` with the reason.
        """
        with self._locks(name):
            try:
                if self.store.vms.get_by_name(name).status != VMStatus.PENDING:
                    return
                self._booter.boot(name)
            except NotFoundError:
                return
            except VolantError as err:
                self._transitions.set_status(
                    name, VMStatus.CRASHED, EventType.VM_CRASHED, f"create failed: {err.message}"
                )
            except Exception:  # the daemon stopping under a boot, say: nothing to record it in
                log.exception("booting vm %s after its create failed", name)

    def _exists(self, name: str) -> bool:
        try:
            self.store.vms.status_of(name)
        except NotFoundError:
            return False
        return True

    # ------------------------------------------------------------ deployment members

    def check_manifest(self, manifest: Manifest) -> None:
        """Refuse a runtime manifest whose fields nothing installed honours, as a new VM of it with
        the daemon's defaults would boot (ValidationError naming the field).
        """
        check_requirements(
            self.backends.resolved(VMConfig.from_manifest(manifest.name, manifest)), self.backends
        )

    def validate_template(self, template: Mapping[str, Any]) -> dict[str, Any]:
        """Check a deployment's member configuration (a config patch naming its plugin); the stored form."""
        patch = parse_patch(template)
        if not patch.plugin:
            raise ValidationError(
                "config.plugin: required; name the runtime manifest to run", field="config.plugin"
            )
        entry = self.catalog.get(patch.plugin)
        config = self.backends.resolved(
            apply_patch(VMConfig.from_manifest(entry.name, entry.manifest), patch)
        )
        self._admission.check_config(config)
        return patch.model_dump(mode="json", exclude_unset=True)

    def create_member(self, name: str, template: Mapping[str, Any], group_id: int) -> VMView:
        """Create VM ``name`` from a deployment's member configuration."""
        return self.create_vm(CreateVMRequest(name=name, config=parse_patch(template)), group_id=group_id)

    def crash_is_final(self, name: str) -> bool:
        """Whether VM ``name`` is crashed with no automatic restart to come (its restart policy is
        ``never`` or has given up). Never waits: while another operation holds the VM, False.
        """
        release = self._locks.try_hold(name)
        if release is None:
            return False  # an operation (a restart's boot, say) works on it now: not final
        try:
            record = self.store.vms.get_by_name(name)
            return record.status == VMStatus.CRASHED and not self._supervisor.restart_pending(name)
        except NotFoundError:
            return False
        finally:
            release()

    # ---------------------------------------------------------- configuration

    def get_config(self, name: str) -> ConfigRecord:
        """The current configuration version of VM ``name``."""
        return self._configs.current(name)

    def config_history(self, name: str, limit: int | None = None) -> list[ConfigRecord]:
        """The configuration versions of VM ``name``, newest first, at most ``limit`` (None: all)."""
        return self._configs.history(name, limit)

    def patch_config(self, name: str, patch: ConfigPatch) -> ConfigRecord:
        """Merge ``patch`` into the current configuration and store the result as the next version.

        The VM is not restarted: it shows ``restart_pending`` until its next start applies it. A
        new ``manifest`` needs the VM's runtime plugin installed and enabled, as creating a VM does.
        """
        if patch.manifest is not None:
            self.catalog.get_enabled(self.store.vms.get_by_name(name).plugin)
        return self._configs.patch(name, patch)

    def rollback_config(self, name: str, version: int) -> ConfigRecord:
        """Store configuration ``version`` again as the next version (the history is never rewritten)."""
        return self._configs.rollback(name, version)

    # --------------------------------------------------------- start and stop

    def start_vm(self, name: str) -> VMView:
        """Boot a stopped, crashed or pending VM."""
        with self._locks(name):
            record = self.store.vms.get_by_name(name)
            if self._supervisor.watches(name) or record.status in ACTIVE_STATES:
                raise ConflictError(
                    f"vm {name!r} is {record.status} already; {until_stopped(name, record.status)}"
                )
            self._supervisor.reset_restarts(name)
            try:
                return self._booter.boot(name)
            except LimitError:  # refused before anything changed: the VM stays as it was
                raise
            except VolantError as err:
                self._transitions.set_status(
                    name, VMStatus.CRASHED, EventType.VM_CRASHED, f"start failed: {err.message}"
                )
                raise

    def stop_vm(self, name: str, *, force: bool = False) -> VMView:
        """Power the guest off: gracefully first, killed after the stop timeout; with ``force``
        killed at once, whatever its state (a stop already waiting for the guest ends too).
        Idempotent.
        """
        if force:
            self._supervisor.kill_now(name)
        with self._locks(name):
            self._stop_locked(name, force=force)
            return self.get_vm(name)

    def restart_vm(self, name: str) -> VMView:
        """Stop (if running), then start."""
        with self._locks(name):
            self._stop_locked(name)
            return self.start_vm(name)

    def delete_vm(self, name: str, *, force: bool = False) -> None:
        """Stop the VM if it is active (as :meth:`stop_vm` does, ``force`` too) and remove it: row,
        lease, config, runtime directory, host resources.
        """
        if force:
            self._supervisor.kill_now(name)
        with self._locks(name):
            stopped = self._stop_locked(name, force=force)  # NotFoundError first when there is no such VM
            self._discard(name, "vm deleted", stopped)

    def shutdown(self) -> None:
        """Stop watching VMs (they keep running and are re-adopted at the next start); tell the plugins."""
        self._supervisor.forget_all()
        self.plugins.calls.notify("volant_daemon_stopping")

    # ---------------------------------------------------------------- recover

    def recover(self) -> None:
        """After a daemon start: re-adopt VMMs that still run; mark the others crashed (and the VMs
        still ``pending``: volantd died between their row and their boot), release what they held
        and restart them if their policy says so. Published ports are reconciled first: those of
        VMs recorded as active are written again, every other VM's are removed; partial files a
        killed volantd left are removed. No guest image is resolved (ADR 0030).
        """
        self.boot_media.sweep_partials()
        self._finish_deletions()
        self._reconcile_ports()
        for record in self.store.vms.list():
            if record.status not in ACTIVE_STATES and record.status != VMStatus.PENDING:
                continue
            with self._locks(record.name):
                try:
                    adopted = self._booter.adopt(record)
                    reason = (
                        "the VMM was gone when volantd started"
                        if record.pid
                        else "volantd stopped before its boot began"
                        if record.status == VMStatus.PENDING
                        else "volantd stopped before its VMM's launch finished; that VMM was killed"
                    )
                except NotFoundError as err:  # its hypervisor plugin was uninstalled
                    adopted = None
                    reason = f"cannot re-adopt its VMM (pid {record.pid}), which may still run: {err.message}"
                if adopted is None:
                    self._release(record)
                    self._transitions.set_status(
                        record.name, VMStatus.CRASHED, EventType.VM_CRASHED, reason, pid=None
                    )
                    self._supervisor.schedule_restart(record.name)
                    continue
                self._supervisor.watch(record.name, *adopted)
        self.plugins.calls.notify("volant_daemon_started", vms=self.list_vms())

    # ----------------------------------------------------------------- internals

    def _finish_deletions(self) -> None:
        """Finish the deletions a stopped daemon left halfway (see :mod:`.vmdirs`)."""
        records = {record.id: record for record in self.store.vms.list()}
        parents = [self.settings.runtime_dir, *(record.runtime_dir.parent for record in records.values())]
        for aside in vmdirs.interrupted(parents):
            record = records.get(aside.vm_id)
            if record is not None and record.name == aside.name:
                with self._locks(record.name):
                    self._discard(record.name, "vm deleted (finished after volantd restarted)")
            aside.remove()

    def _reconcile_ports(self) -> None:
        """Make the published-port rules those of the VMs recorded as active (a failure is logged)."""
        active = [record for record in self.store.vms.list() if record.status in ACTIVE_STATES]
        try:
            self._ports.reconcile(self._views.view_and_booted(r) for r in active)
        except VolantError as err:
            log.error("reconciling published ports failed: %s", err.message)

    def _stop_locked(self, name: str, *, force: bool = False, message: str | None = None) -> VMRecord:
        """Power the watched VMM off (``force``: kill it at once) and release the VM's host resources
        (lock held); an active VM whose VMM is not watched has its resources released and is marked
        stopped. ``message`` says why it stopped (kept as its ``status_reason``); by default, that
        it was stopped, or killed. The VM's row as the stop leaves it.
        """
        message = message or ("killed at once (force)" if force else "vm stopped")
        self._supervisor.reset_restarts(name)  # an explicit stop ends any pending automatic restart
        record = self.store.vms.get_by_name(name)
        if not self._supervisor.watches(name):
            if record.status in ACTIVE_STATES:
                self._release(record)
                return self._transitions.set_status(
                    name, VMStatus.STOPPED, EventType.VM_STOPPED, message, pid=None
                )
            return record
        self._transitions.set_status(
            name, VMStatus.STOPPING, EventType.VM_STOPPING, "killing (force)" if force else "powering off"
        )
        try:
            status = self._supervisor.stop(name, force=force)
        finally:
            self._release(record)
        stopped = self._transitions.set_status(
            name, VMStatus.STOPPED, EventType.VM_STOPPED, message, pid=None, exit_status=status
        )
        if self.plugins.calls.has_listeners("volant_vm_stopped"):
            self.plugins.calls.notify("volant_vm_stopped", vm=self.get_vm(name), exit_status=status)
        return stopped

    def _release(self, record: VMRecord) -> VMView:
        """Release what the VM of ``record`` holds on the host for the configuration it booted with;
        the VM's view.
        """
        view, booted = self._views.view_and_booted(record)
        self._resources.release(view, booted)
        return view

    def _discard(self, name: str, message: str, record: VMRecord | None = None) -> None:
        """Remove every trace of ``name`` (its VMM, if any, is already gone); ``record`` is its row
        when the caller holds it already (read under the VM's lock), else it is read.
        """
        self._supervisor.kill(name)
        if record is None:
            record = self.store.vms.get_by_name(name)
        view = self._release(record)
        aside = vmdirs.set_aside(record.id, name, record.runtime_dir)
        try:
            self.store.vms.delete(name)
        except BaseException:
            vmdirs.put_back(aside, record.runtime_dir)
            raise
        aside.remove()
        self._transitions.emit(EventType.VM_DELETED, record, message)
        self.plugins.calls.notify("volant_vm_deleted", vm=view)
