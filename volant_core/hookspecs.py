"""The Volant plugin API: every hook a plugin may implement.

A plugin is a module (or object) with functions marked ``@volant_core.hookimpl``
whose names match the specifications below, exposed through an entry point::

    [project.entry-points."volant.plugins"]
    my-plugin = "my_package.plugin"

Hooks fall in four groups:

* **extension points** return descriptors that the core indexes by name
  (hypervisors, network modes, boot sources, device drivers, runtime manifests,
  seed builders, host checks);
* **lifecycle** hooks are called as a VM moves through its states, in this
  order: ``volant_vm_validate`` -> ``volant_prepare_launch`` ->
  ``volant_vm_launched`` -> ``volant_vm_stopped`` -> ``volant_vm_deleted``,
  with ``volant_event`` for every event the orchestrator emits;
* **surface** hooks extend the CLI and the HTTP API;
* **resolution** hooks pick one answer (``firstresult``): the first
  implementation returning something other than ``None`` wins, and the core's
  own default is registered last.

Implementations may accept fewer arguments than a spec names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import ipaddress

    import click

    from volant_core.descriptors import (
        BootSourceDescriptor,
        DeviceDriverDescriptor,
        HostCheck,
        LaunchAdditions,
        NetworkModeDescriptor,
        RouteDescriptor,
        SeedBuilderDescriptor,
    )
    from volant_core.events import Event
    from volant_core.launch import HypervisorDescriptor, Instance, LaunchSpec
    from volant_core.vm import VMView

PROJECT_NAME = "volant"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

# --------------------------------------------------------------------------
# Extension points: return descriptors, indexed by name in the registries.
# --------------------------------------------------------------------------


@hookspec
def volant_hypervisors() -> list[HypervisorDescriptor]:
    """Register hypervisor backends.

    Return a list of :class:`~volant_core.launch.HypervisorDescriptor`. The
    daemon picks one by name (``VOLANT_HYPERVISOR`` / ``volantd --hypervisor``);
    an unknown name is refused with the list of registered ones.
    """


@hookspec
def volant_network_modes() -> list[NetworkModeDescriptor]:
    """Register network modes (``bridged``, ``dhcp``, ``vsock`` ...).

    Return a list of :class:`~volant_core.descriptors.NetworkModeDescriptor`.
    A VM's ``network.mode`` (from its config, else its manifest, else the
    daemon default) selects one by name.
    """


@hookspec
def volant_boot_sources() -> list[BootSourceDescriptor]:
    """Register fetchers for boot media by URL scheme.

    Return a list of :class:`~volant_core.descriptors.BootSourceDescriptor`.
    Each fetches an artifact named in a manifest (kernel, initramfs, rootfs,
    disk), verifies its checksum and stores it in the artifact cache.
    """


@hookspec
def volant_device_drivers() -> list[DeviceDriverDescriptor]:
    """Register passthrough device drivers (for example VFIO for PCI devices).

    Return a list of :class:`~volant_core.descriptors.DeviceDriverDescriptor`.
    """


@hookspec
def volant_runtime_manifests() -> list[Any]:
    """Ship runtime manifests inside a pip package.

    Return a list of manifests: :class:`~volant_core.manifest.Manifest`
    objects, dicts, or :class:`pathlib.Path` objects naming JSON files. They appear next to the manifests
    installed through the API, marked with their source package.
    """


@hookspec
def volant_seed_builders() -> list[SeedBuilderDescriptor]:
    """Register builders of guest configuration disks (cloud-init NoCloud seeds).

    Return a list of :class:`~volant_core.descriptors.SeedBuilderDescriptor`.
    """


@hookspec
def volant_host_checks() -> list[HostCheck]:
    """Register checks that ``volar doctor`` runs on the host.

    Return a list of :class:`~volant_core.descriptors.HostCheck`; each reports
    pass, warn or fail with the fix.
    """


# --------------------------------------------------------------------------
# Lifecycle: called by the orchestrator in this order.
# --------------------------------------------------------------------------


@hookspec
def volant_vm_validate(vm: VMView) -> None:
    """Check a VM's resolved configuration before anything is allocated.

    Called at create and before every new configuration version is stored
    (PATCH, rollback), with the VM as that configuration would boot it.
    Raise :class:`~volant_core.errors.ValidationError` naming the field to
    refuse it; the API answers 422 and nothing is written.
    """


@hookspec
def volant_prepare_launch(vm: VMView, spec: LaunchSpec) -> LaunchAdditions | None:
    """Add to a VM's launch just before the hypervisor starts it.

    Return :class:`~volant_core.descriptors.LaunchAdditions` (kernel
    arguments, disks, devices, hypervisor arguments) or None. Raising aborts
    the launch and every step before it is undone.
    """


@hookspec
def volant_vm_launched(vm: VMView, instance: Instance) -> None:
    """Called after the hypervisor started a VM's VMM process (the guest may still be booting)."""


@hookspec
def volant_vm_stopped(vm: VMView, exit_status: int | None) -> None:
    """Called after a VM's VMM process ended, whether stopped, crashed or killed."""


@hookspec
def volant_vm_deleted(vm: VMView) -> None:
    """Called after a VM and every host resource it held were removed."""


@hookspec
def volant_event(event: Event) -> None:
    """Called for every event the orchestrator emits, after it was stored.

    Must not block: hand slow work to a thread of your own.
    """


# --------------------------------------------------------------------------
# Surfaces: extend the CLI and the HTTP API.
# --------------------------------------------------------------------------


@hookspec
def volant_register_commands(cli: click.Group) -> None:
    """Add commands to ``volar``: call ``cli.add_command(...)``."""


@hookspec
def volant_api_routes() -> list[RouteDescriptor]:
    """Mount HTTP routes on the API.

    Return a list of :class:`~volant_core.descriptors.RouteDescriptor`; the
    routes sit behind the same authentication and appear in ``/openapi``.
    """


# --------------------------------------------------------------------------
# Resolution: the first non-None answer wins; the core default runs last.
# --------------------------------------------------------------------------


@hookspec(firstresult=True)
def volant_allocate_ip(
    vm_name: str, subnet: ipaddress.IPv4Network, taken: frozenset[str], reserved: frozenset[str]
) -> str | None:
    """Choose the IPv4 address to lease to a VM.

    ``taken`` are the addresses leased now and ``reserved`` those never to be
    used (network, broadcast, host). Return an address inside ``subnet`` or
    None to let the next implementation decide; the core default takes the
    lowest free address in numeric order.

    Stops at the first non-None result.
    """
