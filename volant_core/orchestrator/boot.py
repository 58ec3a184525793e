"""Booting a VM: its row brought in line with the configuration about to boot, its address leased,
its boot media and network prepared, its VMM launched and handed to the supervisor; and, after a
daemon restart, finding a VMM that still runs again.

A boot publishes ``VM_STARTING``; the supervisor makes the VM ``running`` once kestrel answers.
Every method here runs under the VM's lock, which the caller holds.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from volant_core.agent_token import vm_token
from volant_core.channels import TokenChannel
from volant_core.errors import (
    ConflictError,
    DiskFullError,
    LaunchError,
    PluginError,
    VolantError,
    describe_exception,
)
from volant_core.events import EventType
from volant_core.launch import AgentChannel, Instance, LaunchSpec, socket_room_problem
from volant_core.orchestrator.context import OrchestratorContext
from volant_core.orchestrator.resources import HostResources
from volant_core.orchestrator.vmconfig import VMConfig
from volant_core.store import ConfigRecord, VMRecord
from volant_core.vm import VMStatus, VMView

log = logging.getLogger(__name__)

#: Longest wait for a VMM killed during its boot to be gone (seconds).
REAP_TIMEOUT = 10.0
#: The kernel of a spec handed to ``adopt``: adoption resolves no boot media (ADR 0030).
NO_KERNEL = Path(os.devnull)


class Booter:
    """Launches VMMs from the VMs' current configurations and adopts the ones a daemon restart left.

    ``resources`` acquires and releases what a VM holds on the host (its boot media among them);
    ``watch`` hands a launched VMM and its agent channel to the supervisor.
    """

    def __init__(
        self,
        context: OrchestratorContext,
        resources: HostResources,
        *,
        watch: Callable[[str, Instance, AgentChannel], None],
    ) -> None:
        self._context = context
        self._resources = resources
        self._watch = watch

    def boot(self, name: str, *, created: tuple[VMRecord, ConfigRecord] | None = None) -> VMView:
        """Launch the VMM of ``name`` from its current configuration and return the VM's view
        (``starting``); the supervisor thread takes it from there. Whatever fails, what was acquired
        for it on the host is released again, and the failure is raised as a :class:`VolantError`
        (an unexpected one as a LaunchError saying what happened), so every caller can record the
        VM ``crashed`` with the reason.

        ``created`` is the VM's row and configuration when the caller has just written them (under
        the VM's lock): they are not read again, and the VM is not admitted again.
        """
        try:
            return self._boot(name, created)
        except VolantError:
            raise
        except Exception as err:
            log.exception("booting vm %s failed", name)
            raise LaunchError(f"vm {name!r}: boot failed: {describe_exception(err)}") from err

    def _boot(self, name: str, created: tuple[VMRecord, ConfigRecord] | None) -> VMView:
        store = self._context.store
        backends = self._context.backends
        before = store.vms.get_by_name(name) if created is None else created[0]
        if problem := socket_room_problem(before.runtime_dir):  # before anything is downloaded
            raise LaunchError(problem)
        stored = store.configs.current(before.id) if created is None else created[1]
        config = self._context.views.config(stored)
        launcher = backends.launcher(backends.hypervisor_of(config))
        # A VM just created was admitted as pending, a state that holds resources: nothing to check again.
        admitted = created is not None
        admission = nullcontext() if admitted else self._context.admission.reserve(name, config.resources)
        with admission:
            record = self._apply_config(before, config, stored.version)
        self._context.transitions.emit(EventType.VM_STARTING, record, "booting")
        view = self._context.views.view_of(record, stored)  # the row now names ``stored`` as booted
        try:
            spec = self._resources.acquire(view, config)
        except OSError as err:
            if err.errno in DiskFullError.ERRNOS:
                raise DiskFullError.of(err, f"the boot media of vm {name!r} in {view.runtime_dir}") from err
            raise
        try:
            instance = launcher.launch(spec)
            try:  # from here on, whatever fails kills the VMM: none runs without being watched
                channel = self._channel_of(view, instance)
                launched = store.vms.update(
                    name,
                    pid=instance.pid,
                    accelerator=instance.accelerator,
                    console_socket=instance.console_socket,
                    console_log=instance.console_log,
                )
                self._watch(name, instance, channel)
            except BaseException:
                instance.kill()
                instance.wait(REAP_TIMEOUT)
                raise
        except BaseException:
            self._resources.release(view, config)
            raise
        # the row as the update above left it (the VM's lock is held: nobody else writes it)
        launched_view = self._context.views.view_of(launched, stored)
        self._context.plugins.calls.notify("volant_vm_launched", vm=launched_view, instance=instance)
        return launched_view

    def lease_address(self, name: str) -> str:
        """Ask the ``volant_allocate_ip`` hook for a free address of the subnet for VM ``name``; the
        caller records the lease in the same transaction.
        """
        settings = self._context.settings
        subnet = settings.subnet
        taken = frozenset(lease.ip_address for lease in self._context.store.ips.leased())
        reserved = frozenset(
            {str(subnet.network_address), str(subnet.broadcast_address), str(settings.host_ip)}
        )
        ip = self._context.plugins.calls.resolve(
            "volant_allocate_ip", vm_name=name, subnet=subnet, taken=taken, reserved=reserved
        )
        if ip is None:
            raise ConflictError(f"no free IP address left in {subnet}; delete a VM or widen VOLANT_SUBNET")
        if ipaddress.IPv4Address(ip) not in subnet or ip in taken or ip in reserved:
            raise PluginError(f"volant_allocate_ip returned {ip}, which is not free in {subnet}")
        return ip

    def adopt(self, record: VMRecord) -> tuple[Instance, AgentChannel] | None:
        """The VMM that still runs the active VM ``record`` describes (after a daemon restart) and
        the channel to its agent; None when its hypervisor plugin does not find it (then that
        plugin killed whatever the VM's launches left running: with no pid recorded, volantd died
        before its launch returned).

        Raises :class:`~volant_core.errors.NotFoundError` when its hypervisor plugin is not
        installed any more.
        """
        launcher = self._context.backends.launcher(record.hypervisor)
        instance = launcher.adopt(self._adopt_spec(record), record.pid)
        if instance is None:
            return None
        view = self._context.views.view_of(record)
        try:
            return instance, self._channel_of(view, instance)
        except LaunchError:
            instance.kill()
            return None

    def _channel_of(self, view: VMView, instance: Instance) -> AgentChannel:
        """The instance's agent channel, else one a plugin offers through ``volant_agent_channel``;
        either way sending the VM's agent token with every request (kestrel asks for it on TCP).
        """
        channel = instance.agent_channel
        if channel is None:
            channel = self._context.plugins.calls.resolve("volant_agent_channel", vm=view, instance=instance)
        if channel is None:
            raise LaunchError(
                f"vm {view.name!r}: hypervisor {view.hypervisor!r} gives no agent channel and no plugin "
                f"offers one for network mode {view.network_mode!r}; kestrel cannot be reached"
            )
        return TokenChannel(channel, vm_token(self._context.settings.state_dir, view.name))

    def _apply_config(self, record: VMRecord, config: VMConfig, version: int) -> VMRecord:
        """Make the VM row ``record`` describes (read under the VM's lock: nobody else writes it)
        ``starting`` with the configuration about to boot, leasing or releasing the VM's address
        when its network mode changed whether it needs one; the row as written. One statement when
        the address stays as it is.
        """
        store = self._context.store
        backends = self._context.backends
        name = record.name
        needs_ip = backends.mode(backends.network_of(config).mode, field="network.mode").needs_ip
        changes = {
            **self._context.transitions.status_columns(VMStatus.STARTING, "booting"),
            "runtime": config.runtime,
            "hypervisor": backends.hypervisor_of(config),
            "cpu_cores": config.resources.cpu_cores,
            "memory_mb": config.resources.memory_mb,
            "kernel_cmdline": config.kernel_cmdline,
            "config_version": version,
        }
        if needs_ip == (record.ip_address is not None):  # the address stays: its column is not written
            return store.vms.update(name, **changes)
        with store.transaction():
            ip = None
            if needs_ip:
                ip = self.lease_address(name)
                store.ips.lease(record.id, ip)
            else:
                store.ips.release(record.id)
            return store.vms.update(name, ip_address=ip, **changes)

    def _adopt_spec(self, record: VMRecord) -> LaunchSpec:
        """What the hypervisor plugin needs to recognise the VMM of ``record`` (and to clean up after
        it). No boot media: a restart must not wait for an image build, or fail with it (ADR 0030).
        """
        return LaunchSpec(
            name=record.name,
            vm_dir=record.runtime_dir,
            cpu_cores=record.cpu_cores,
            memory_mb=record.memory_mb,
            kernel=NO_KERNEL,
            vsock_cid=record.vsock_cid,
        )
