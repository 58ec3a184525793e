"""What a VM holds on the host, acquired in one order and released from one place.

Acquisition, before every launch: network (the mode attaches the VM) -> published ports (the
nftables rules of its ``expose``, :mod:`.publishing`) -> boot media (kernel,
initramfs layers, rootfs and disks) -> seed disk (cloud-init) -> devices (the device driver claims
them) -> ``volant_prepare_launch``. When a step fails, exactly the steps before it are undone, in
reverse order, and the error goes on.

Release, on every path that ends a VMM or never started one (stop, crash, delete, recovery at
daemon start, a failed launch): ``volant_release_launch`` -> devices -> seed -> published ports
-> network, each
step isolated: a plugin that raises, or that is no longer installed, is logged, recorded on the
plugin and published as ``PLUGIN_ERROR``; the other steps still run and the caller still moves
the VM to its final state. Release steps are idempotent, so releasing twice is harmless.
"""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from volant_core.descriptors import LaunchAdditions
from volant_core.errors import PluginError, VolantError, describe_exception
from volant_core.kernel_cmdline import check_argument, check_length
from volant_core.launch import Capability, DiskRole, DiskSpec, LaunchSpec, PciDeviceSpec
from volant_core.orchestrator.bootmedia import BootMedia
from volant_core.orchestrator.context import OrchestratorContext
from volant_core.orchestrator.publishing import PortPublisher, published_ports
from volant_core.orchestrator.requirements import cloud_init_of, devices_of
from volant_core.orchestrator.vmconfig import VMConfig
from volant_core.vm import VMView

log = logging.getLogger(__name__)

#: Directory of a VM's runtime directory holding its seed disk (rebuilt on every boot).
SEED_DIR = "seed"


@dataclass(frozen=True)
class _Step:
    """One release step: which plugin it belongs to (for the report) and what it does."""

    plugin: str
    what: str
    run: Callable[[], object]


class HostResources:
    """Acquires a VM's host resources into a :class:`LaunchSpec` and releases them again."""

    def __init__(self, context: OrchestratorContext, boot_media: BootMedia, ports: PortPublisher) -> None:
        self._context = context
        self._boot_media = boot_media
        self._ports = ports

    def acquire(self, view: VMView, config: VMConfig) -> LaunchSpec:
        """Acquire everything ``view`` needs to boot ``config`` and describe the launch.

        On failure, undoes what was acquired and raises the error.
        """
        acquired: list[_Step] = []
        try:
            return self._acquire(view, config, acquired)
        except BaseException:
            self._run(reversed(acquired), view)
            raise

    def release(self, view: VMView, config: VMConfig) -> None:
        """Release what ``view`` holds for ``config`` (the configuration it booted with), every step
        isolated; failures are reported, never raised.
        """
        self._run(self._release_steps(view, config), view)

    # ------------------------------------------------------------------ acquiring

    def _acquire(self, view: VMView, config: VMConfig, acquired: list[_Step]) -> LaunchSpec:
        backends = self._context.backends
        mode = backends.network_mode(view.network_mode)
        acquired.append(self._network_step(view))
        attachment = mode.attach(view)
        if _publishes(view, config):
            acquired.append(self._ports_step(view))
            self._ports.publish(view, config)
        progress = functools.partial(self._context.transitions.download_progress, view.name)
        plan = self._boot_media.prepare(
            view.name, view.runtime_dir, config.boot_manifest(), config.kernel_cmdline, progress=progress
        )
        if config.kernel_override is not None:
            kernel = self._boot_media.fetch(
                config.kernel_override, None, field="kernel_override", progress=progress
            )
            plan = replace(plan, kernel=kernel)
        disks = plan.disks
        cloud_init = cloud_init_of(config)
        if cloud_init is not None:
            acquired.append(self._seed_step(view))
            directory = self._seed_dir(view)
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
            seed = backends.seed_builder(cloud_init.seed_mode).build(view, cloud_init, directory)
            disks += (replace(seed, readonly=True, role=DiskRole.SEED),)
        pci_devices: tuple[PciDeviceSpec, ...] = ()
        devices = devices_of(config)
        if devices is not None:
            driver = backends.device_driver("pci", field="devices.pci_passthrough")
            acquired.append(self._devices_step(view))
            pci_devices = tuple(driver.attach(view, devices))
        acquired.append(self._launch_step(view))
        spec = LaunchSpec(
            name=view.name,
            vm_dir=view.runtime_dir,
            cpu_cores=config.resources.cpu_cores,
            memory_mb=config.resources.memory_mb,
            kernel=plan.kernel,
            vsock_cid=view.vsock_cid,
            initramfs=plan.initramfs,
            kernel_args=plan.kernel_args + attachment.kernel_args,
            disks=disks,
            nics=attachment.nics,
            pci_devices=pci_devices,
        )
        _check_plugin_arguments(mode_owner(self._context, view), attachment.kernel_args)
        spec = self._check_capabilities(view, self._with_additions(view, spec))
        check_length(spec.kernel_args)
        return spec

    def _with_additions(self, view: VMView, spec: LaunchSpec) -> LaunchSpec:
        """Merge what ``volant_prepare_launch`` implementations add."""
        results = self._context.plugins.calls.validate("volant_prepare_launch", vm=view, spec=spec)
        for owner, add in results:
            if not isinstance(add, LaunchAdditions):
                raise PluginError(
                    f"plugin {owner}: volant_prepare_launch must return LaunchAdditions or None, got {add!r}"
                )
            _check_plugin_arguments(owner, add.kernel_args)
            spec = replace(
                spec,
                kernel_args=spec.kernel_args + add.kernel_args,
                disks=_before_seed(spec.disks, add.disks),
                pci_devices=spec.pci_devices + add.pci_devices,
                devices=spec.devices + add.devices,
                extra_args=spec.extra_args + add.extra_args,
            )
        return spec

    def _check_capabilities(self, view: VMView, spec: LaunchSpec) -> LaunchSpec:
        """Refuse a launch whose parts the hypervisor cannot honour (a plugin added them)."""
        capabilities = self._context.backends.hypervisor(view.hypervisor).capabilities
        needed = {
            Capability.DISKS: bool(spec.disks),
            Capability.TAP_NICS: bool(spec.nics),
            Capability.PCI_PASSTHROUGH: bool(spec.pci_devices),
            Capability.RAW_ARGUMENTS: bool(spec.devices or spec.extra_args),
        }
        missing = sorted(c.value for c, wanted in needed.items() if wanted and c not in capabilities)
        if missing:
            raise PluginError(
                f"vm {view.name!r}: the launch needs {', '.join(missing)}, which hypervisor "
                f"{view.hypervisor!r} does not offer (a plugin added them in volant_prepare_launch?)"
            )
        return spec

    # ------------------------------------------------------------------ releasing

    def _release_steps(self, view: VMView, config: VMConfig) -> list[_Step]:
        steps = [self._launch_step(view)]
        if devices_of(config) is not None:
            steps.append(self._devices_step(view))
        if cloud_init_of(config) is not None:
            steps.append(self._seed_step(view))
        if _publishes(view, config):
            steps.append(self._ports_step(view))
        steps.append(self._network_step(view))
        return steps

    def _launch_step(self, view: VMView) -> _Step:
        def release() -> None:
            self._context.plugins.calls.notify("volant_release_launch", vm=view)

        return _Step("core", "volant_release_launch", release)

    def _devices_step(self, view: VMView) -> _Step:
        registry = self._context.plugins.registries
        driver = registry.device_driver_for("pci")
        owner = registry.device_drivers.owner(driver.name) if driver is not None else "a device driver"

        def release() -> None:
            self._context.backends.device_driver("pci", field="devices.pci_passthrough").detach(view)

        return _Step(owner, "releasing its devices", release)

    def _seed_step(self, view: VMView) -> _Step:
        return _Step(
            "core", "removing its seed disk", lambda: shutil.rmtree(self._seed_dir(view), ignore_errors=True)
        )

    def _ports_step(self, view: VMView) -> _Step:
        return _Step("core", "removing its published ports", lambda: self._ports.unpublish(view))

    def _network_step(self, view: VMView) -> _Step:
        owner = mode_owner(self._context, view)

        def release() -> None:
            self._context.backends.network_mode(view.network_mode).detach(view)

        return _Step(owner, f"detaching it from network mode {view.network_mode!r}", release)

    def _seed_dir(self, view: VMView) -> Path:
        return view.runtime_dir / SEED_DIR

    def _run(self, steps: Iterable[_Step], view: VMView) -> None:
        """Run release steps in order, each isolated; report each failure and go on."""
        for step in steps:
            try:
                step.run()
            except VolantError as err:  # typically: the plugin is no longer installed
                self._report(step, view, err.message)
            except Exception as err:  # a plugin's bug never leaves the VM without a final state
                self._report(step, view, describe_exception(err))

    def _report(self, step: _Step, view: VMView, problem: str) -> None:
        message = f"vm {view.name}: {step.what} failed ({problem}); what it held on the host may remain"
        plugins = self._context.plugins
        if step.plugin in plugins.info:
            plugins.publish_failure(step.plugin, message, vm=view.name)
        else:
            log.error("%s", message)
            self._context.transitions.plugin_error(view.name, message)


def _before_seed(disks: tuple[DiskSpec, ...], added: tuple[DiskSpec, ...]) -> tuple[DiskSpec, ...]:
    """``disks`` with ``added`` inserted before the seed disk: the seed stays the last disk whatever
    plugins add (a guest finds its seed by label, but people and images expect it last).
    """
    seeds = tuple(disk for disk in disks if disk.role is DiskRole.SEED)
    return tuple(disk for disk in disks if disk.role is not DiskRole.SEED) + added + seeds


def _publishes(view: VMView, config: VMConfig) -> bool:
    """Whether a VM of ``view`` booted with ``config`` publishes ports."""
    return bool(published_ports(config, view.network_mode, view.ip_address))


def mode_owner(context: OrchestratorContext, view: VMView) -> str:
    """The plugin that registered the network mode ``view`` boots with (``a network mode`` when none does)."""
    registry = context.plugins.registries.network_modes
    return registry.owner(view.network_mode) if view.network_mode in registry else "a network mode"


def _check_plugin_arguments(owner: str, arguments: tuple[str, ...]) -> None:
    """Refuse kernel arguments a plugin contributes that are not one clean token each."""
    for argument in arguments:
        try:
            check_argument(argument)
        except ValueError as err:
            raise PluginError(f"plugin {owner} gave the kernel argument {argument!r}: {err}") from None
