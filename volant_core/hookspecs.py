"""The Volant plugin API: every hook a plugin may implement, and how each is called.

A plugin is a module (or object) with functions marked ``@volant_core.hookimpl``
whose names match the specifications below, exposed through an entry point::

    [project.entry-points."volant.plugins"]
    my-plugin = "my_package.plugin"

Every hook has one calling policy, declared here with its specification by the
decorator that marks it (see :class:`Policy`):

* **registration** hooks return descriptors, called once per plugin when the
  plugins load; each result is type-checked, and a plugin whose hook raises or
  returns the wrong type is ``failed`` and keeps nothing it registered anywhere;
* **validation** hooks may refuse: the first exception raised reaches the caller
  (a :class:`~volant_core.errors.ValidationError` becomes a 422) and the
  remaining implementations are not called;
* **notification** hooks are told what happened: an implementation that raises is
  logged, recorded on its plugin (``degraded``, with the error) and published as a
  ``PLUGIN_ERROR`` event, and every other implementation is still called; the VM's
  transition never depends on them;
* **resolution** hooks pick one answer (``firstresult``): the first implementation
  returning something other than ``None`` wins.

Implementations are called in pluggy's order: ``tryfirst`` ones first, then
the others from the most recently registered plugin back to the first, then
``trylast`` ones. The core's own plugin is registered first, so it answers
last. Hook wrappers are not supported.

Implementations may accept fewer arguments than a spec names. A hook with a
``context`` argument gives each implementation its own plugin's
:class:`~volant_core.context.PluginContext` (settings, state directory, event
publisher, logger).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy
from pydantic import BaseModel

from volant_core.descriptors import (
    BootSourceDescriptor,
    DeviceDriverDescriptor,
    HostCheck,
    NetworkModeDescriptor,
    RouteDescriptor,
    SeedBuilderDescriptor,
)
from volant_core.launch import HypervisorDescriptor

if TYPE_CHECKING:
    import ipaddress

    import click

    from volant_core.context import PluginContext
    from volant_core.descriptors import LaunchAdditions
    from volant_core.events import Event
    from volant_core.launch import AgentChannel, Instance, LaunchSpec
    from volant_core.vm import VMView

PROJECT_NAME = "volant"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

F = TypeVar("F", bound=Callable[..., Any])


class Policy(StrEnum):
    """How the core calls a hook (see the module documentation)."""

    REGISTRATION = "registration"
    VALIDATION = "validation"
    NOTIFICATION = "notification"
    RESOLUTION = "resolution"


#: Attribute of a spec function holding its :class:`Policy`.
POLICY_ATTRIBUTE = "volant_policy"
#: Attribute of a registration spec holding the type each returned item must have.
RETURNS_ATTRIBUTE = "volant_returns"


def _spec(policy: Policy, *, returns: type | None = None, firstresult: bool = False) -> Callable[[F], F]:
    def mark(function: F) -> F:
        setattr(function, POLICY_ATTRIBUTE, policy)
        setattr(function, RETURNS_ATTRIBUTE, returns)
        marked: F = hookspec(firstresult=firstresult)(function)
        return marked

    return mark


def registration(returns: type) -> Callable[[F], F]:
    """Mark a registration hook whose implementations return a list of ``returns`` items."""
    return _spec(Policy.REGISTRATION, returns=returns)


validation = _spec(Policy.VALIDATION)
notification = _spec(Policy.NOTIFICATION)
resolution = _spec(Policy.RESOLUTION, firstresult=True)


def policy_of(spec_function: Callable[..., Any]) -> Policy:
    """The calling policy of a hook specification."""
    return Policy(getattr(spec_function, POLICY_ATTRIBUTE))


# --------------------------------------------------------------------------
# Registration: return descriptors, indexed by name in the registries.
# --------------------------------------------------------------------------


@registration(HypervisorDescriptor)
def volant_hypervisors() -> list[HypervisorDescriptor]:
    """Register hypervisor backends.

    Return a list of :class:`~volant_core.launch.HypervisorDescriptor`. The
    daemon picks one by name (``VOLANT_HYPERVISOR`` / ``volantd --hypervisor``,
    or a VM's ``hypervisor``); an unknown name is refused with the registered
    ones. ``capabilities`` are checked against what each VM asks for.
    """


@registration(NetworkModeDescriptor)
def volant_network_modes() -> list[NetworkModeDescriptor]:
    """Register network modes (``bridged``, ``dhcp``, ``vsock`` ...).

    Return a list of :class:`~volant_core.descriptors.NetworkModeDescriptor`.
    A VM's ``network.mode`` (from its config, else its manifest, else the
    daemon default) selects one by name.
    """


@registration(BootSourceDescriptor)
def volant_boot_sources() -> list[BootSourceDescriptor]:
    """Register fetchers for boot media by URL scheme.

    Return a list of :class:`~volant_core.descriptors.BootSourceDescriptor`.
    Each fetches an artifact named in a manifest (kernel, initramfs, rootfs,
    disk), verifies its checksum and stores it in the artifact cache.
    """


@registration(DeviceDriverDescriptor)
def volant_device_drivers() -> list[DeviceDriverDescriptor]:
    """Register passthrough device drivers (for example VFIO for PCI devices).

    Return a list of :class:`~volant_core.descriptors.DeviceDriverDescriptor`;
    one driver per ``bus``. A VM whose configuration lists ``devices`` is
    refused when no driver for their bus is installed.
    """


@registration(object)
def volant_runtime_manifests() -> list[Any]:
    """Ship runtime manifests inside a pip package.

    Return a list of manifests: :class:`~volant_core.manifest.Manifest`
    objects, dicts, or :class:`pathlib.Path` objects naming JSON files. They
    appear next to the manifests installed through the API, marked with their
    source package. An invalid one fails the plugin.
    """


@registration(SeedBuilderDescriptor)
def volant_seed_builders() -> list[SeedBuilderDescriptor]:
    """Register builders of guest configuration disks (cloud-init NoCloud seeds).

    Return a list of :class:`~volant_core.descriptors.SeedBuilderDescriptor`;
    a VM's ``cloud_init.seed_mode`` selects one by name.
    """


@registration(HostCheck)
def volant_host_checks() -> list[HostCheck]:
    """Register checks that ``volar doctor`` runs on the host.

    Return a list of :class:`~volant_core.descriptors.HostCheck`; each reports
    pass, warn or fail with the fix.
    """


@registration(type)
def volant_settings() -> list[type[BaseModel]]:
    """Declare the plugin's settings: a list holding one pydantic model class (or nothing).

    Each field ``f`` of the model is read from ``VOLANT_<PLUGIN>_<F>`` (the
    plugin's entry-point name in upper case, ``-`` as ``_``), can be given as
    ``volantd --<plugin>-<f>``, is listed in ``volantd --help`` and ``volar
    doctor``, and is validated when the daemon starts: an invalid value stops
    it with a message naming the variable. The validated model reaches the
    plugin as ``context.options``.
    """


@registration(RouteDescriptor)
def volant_api_routes() -> list[RouteDescriptor]:
    """Mount HTTP routes on the API.

    Return a list of :class:`~volant_core.descriptors.RouteDescriptor`; the
    routes sit behind the same authentication and appear in ``/openapi``. A
    route clashing with a mounted one fails the plugin.
    """


# --------------------------------------------------------------------------
# Daemon lifecycle: where a plugin reconciles what it owns on the host.
# --------------------------------------------------------------------------


@notification
def volant_daemon_started(vms: list[VMView], context: PluginContext) -> None:
    """Called once when volantd starts, after the store opened and running VMMs were re-adopted.

    ``vms`` are every VM the daemon knows, with their states after
    re-adoption. Reconcile what your plugin holds on the host against them:
    remove what belongs to no VM any more (an orphan tap, a stale claim), start
    again a helper process a crash took down, adopt one still running.
    """


@notification
def volant_daemon_stopping(context: PluginContext) -> None:
    """Called once when volantd stops serving. VMs keep running and are re-adopted at the next start."""


# --------------------------------------------------------------------------
# VM lifecycle: called by the orchestrator in this order.
# --------------------------------------------------------------------------


@validation
def volant_vm_validate(vm: VMView, context: PluginContext) -> None:
    """Check a VM's resolved configuration before anything is allocated.

    Called at create and before every new configuration version is stored
    (PATCH, rollback), with the VM as that configuration would boot it.
    Raise :class:`~volant_core.errors.ValidationError` naming the field to
    refuse it; the API answers 422 and nothing is written.
    """


@validation
def volant_prepare_launch(vm: VMView, spec: LaunchSpec, context: PluginContext) -> LaunchAdditions | None:
    """Add to a VM's launch just before the hypervisor starts it.

    Called last of the host-resource steps (network, boot media, seed disk,
    devices, then this). Return :class:`~volant_core.descriptors.LaunchAdditions`
    or None. Raising aborts the launch and every step before it is undone.
    What you acquire here, release in :func:`volant_release_launch`.
    """


@notification
def volant_release_launch(vm: VMView, context: PluginContext) -> None:
    """Release what :func:`volant_prepare_launch` acquired for ``vm`` on the host.

    Called first of the release steps on every path that ends a VM's VMM or
    never started it: stop, crash, delete, recovery at daemon start, and a
    failed launch. Must be idempotent: it may run for a VM you hold nothing for.
    """


@notification
def volant_vm_launched(vm: VMView, instance: Instance, context: PluginContext) -> None:
    """Called after the hypervisor started a VM's VMM process (the guest may still be booting)."""


@notification
def volant_vm_stopped(vm: VMView, exit_status: int | None, context: PluginContext) -> None:
    """Called after a VM's VMM process ended and its host resources were released."""


@notification
def volant_vm_deleted(vm: VMView, context: PluginContext) -> None:
    """Called after a VM and every host resource it held were removed."""


@notification
def volant_event(event: Event, context: PluginContext) -> None:
    """Called for every event the orchestrator emits, after it was stored.

    Must not block: hand slow work to a thread of your own.
    """


# --------------------------------------------------------------------------
# Surfaces: extend the CLI.
# --------------------------------------------------------------------------


@notification
def volant_register_commands(cli: click.Group) -> None:
    """Add commands to ``volar``: call ``cli.add_command(...)``.

    A plugin whose implementation raises is reported on stderr and skipped.
    """


# --------------------------------------------------------------------------
# Resolution: the first non-None answer wins; the core default answers last.
# --------------------------------------------------------------------------


@resolution
def volant_allocate_ip(
    vm_name: str, subnet: ipaddress.IPv4Network, taken: frozenset[str], reserved: frozenset[str]
) -> str | None:
    """Choose the IPv4 address to lease to a VM.

    ``taken`` are the addresses leased now and ``reserved`` those never to be
    used (network, broadcast, host). Return an address inside ``subnet`` or
    None to let the next implementation decide; the core default takes the
    lowest free address in numeric order.

    Stops at the first non-None result (firstresult).
    """


@resolution
def volant_agent_channel(vm: VMView, instance: Instance, context: PluginContext) -> AgentChannel | None:
    """Offer a way to reach kestrel when the hypervisor's instance has none.

    The agent channel is the hypervisor instance's (``instance.agent_channel``);
    only when that is None is this hook consulted, at boot and at re-adoption,
    for example by a network mode that reaches kestrel over the VM's address.
    Return an :class:`~volant_core.launch.AgentChannel` or None.

    Stops at the first non-None result (firstresult).
    """
