"""Booting a VM: its row brought in line with the configuration about to boot, its address leased,
its boot media and network prepared, its VMM launched and handed to the supervisor; and, after a
daemon restart, finding a VMM that still runs again.

A boot publishes ``VM_STARTING``; the supervisor makes the VM ``running`` once kestrel answers.
Every method here runs under the VM's lock, which the caller holds.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import replace

from volant_core.descriptors import LaunchAdditions
from volant_core.errors import ConflictError, PluginError
from volant_core.events import EventType
from volant_core.launch import Instance, LaunchSpec
from volant_core.orchestrator.bootmedia import BootMedia
from volant_core.orchestrator.context import OrchestratorContext
from volant_core.orchestrator.vmconfig import VMConfig
from volant_core.store import VMRecord
from volant_core.vm import VMStatus, VMView


class Booter:
    """Launches VMMs from the VMs' current configurations and adopts the ones a daemon restart left.

    ``boot_media`` provides kernels and initramfs images; ``watch`` hands a launched VMM to the
    supervisor.
    """

    def __init__(
        self,
        context: OrchestratorContext,
        boot_media: BootMedia,
        *,
        watch: Callable[[str, Instance], None],
    ) -> None:
        self._context = context
        self._boot_media = boot_media
        self._watch = watch

    def boot(self, name: str) -> None:
        """Launch the VMM of ``name`` from its current configuration; the supervisor thread takes it
        from there.
        """
        store = self._context.store
        backends = self._context.backends
        stored = store.configs.current(store.vms.get_by_name(name).id)
        config = VMConfig.model_validate(stored.config)
        launcher = backends.launcher(backends.hypervisor_of(config))
        record = self._apply_config(name, config, stored.version)
        view = self._context.views.view_of(record)
        mode = backends.network_mode(view.network_mode)
        self._context.transitions.set_status(name, VMStatus.STARTING, EventType.VM_STARTING, "booting")
        manifest = config.boot_manifest()
        plan = self._boot_media.prepare(name, record.runtime_dir, manifest, config.kernel_cmdline)
        if config.kernel_override is not None:
            kernel = self._boot_media.fetch(config.kernel_override, None, field="kernel_override")
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
                disks=plan.disks,
                nics=attachment.nics,
                vsock_cid=record.vsock_cid,
            )
            spec = self._with_additions(view, spec)
            instance = launcher.launch(spec)
        except BaseException:
            mode.detach(view)
            raise
        store.vms.update(
            name,
            pid=instance.pid,
            accelerator=instance.accelerator,
            console_socket=instance.console_socket,
            console_log=instance.console_log,
        )
        self._watch(name, instance)
        self._context.host.hook.volant_vm_launched(vm=self._context.views.get(name), instance=instance)

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
        ip = self._context.host.hook.volant_allocate_ip(
            vm_name=name, subnet=subnet, taken=taken, reserved=reserved
        )
        if ip is None:
            raise ConflictError(f"no free IP address left in {subnet}; delete a VM or widen VOLANT_SUBNET")
        if ipaddress.IPv4Address(ip) not in subnet or ip in taken or ip in reserved:
            raise PluginError(f"volant_allocate_ip returned {ip}, which is not free in {subnet}")
        return ip

    def adopt(self, record: VMRecord) -> Instance | None:
        """The VMM that still runs the active VM ``record`` describes (after a daemon restart); None
        when it has no pid or its hypervisor plugin does not find it any more.
        """
        launcher = self._context.backends.launcher(record.hypervisor)
        return launcher.adopt(self._adopt_spec(record), record.pid) if record.pid else None

    def _apply_config(self, name: str, config: VMConfig, version: int) -> VMRecord:
        """Make the VM row describe the configuration about to boot, leasing or releasing the VM's
        address when its network mode changed whether it needs one.
        """
        store = self._context.store
        backends = self._context.backends
        with store.transaction():
            record = store.vms.get_by_name(name)
            mode = backends.mode(backends.network_of(config).mode, field="network.mode")
            needs_ip = mode.needs_ip
            ip = record.ip_address
            if needs_ip and ip is None:
                ip = self.lease_address(name)
                store.ips.lease(record.id, ip)
            elif not needs_ip and ip is not None:
                store.ips.release(record.id)
                ip = None
            return store.vms.update(
                name,
                runtime=config.runtime,
                hypervisor=backends.hypervisor_of(config),
                cpu_cores=config.resources.cpu_cores,
                memory_mb=config.resources.memory_mb,
                kernel_cmdline=config.kernel_cmdline,
                ip_address=ip,
                config_version=version,
            )

    def _with_additions(self, view: VMView, spec: LaunchSpec) -> LaunchSpec:
        """Merge what ``volant_prepare_launch`` implementations add."""
        for add in self._context.host.hook.volant_prepare_launch(vm=view, spec=spec):
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

    def _adopt_spec(self, record: VMRecord) -> LaunchSpec:
        """What the hypervisor plugin needs to recognise the VMM of ``record`` (and to clean up after it)."""
        kernel, _ = self._boot_media.base_image()
        return LaunchSpec(
            name=record.name,
            vm_dir=record.runtime_dir,
            cpu_cores=record.cpu_cores,
            memory_mb=record.memory_mb,
            kernel=kernel,
        )
