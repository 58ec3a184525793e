"""Registration records returned by the extension-point hooks.

Each ``volant_<kind>`` registration hook returns a list of these frozen records;
:mod:`volant_core.registry` indexes them by ``name`` and refuses duplicates.
Factories are called lazily, so registering costs nothing until a record is used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

from volant_core.launch import DiskSpec, HypervisorDescriptor, NicSpec, PciDeviceSpec

if TYPE_CHECKING:
    from volant_core.manifest import CloudInit, Devices
    from volant_core.vm import VMView

__all__ = [
    "ArtifactStream",
    "BootSourceDescriptor",
    "DeviceDriver",
    "DeviceDriverDescriptor",
    "HostCheck",
    "HostCheckResult",
    "HypervisorDescriptor",
    "LaunchAdditions",
    "NetworkAttachment",
    "NetworkMode",
    "NetworkModeDescriptor",
    "NoNetwork",
    "OpenArtifact",
    "RouteDescriptor",
    "SeedBuilder",
    "SeedBuilderDescriptor",
]

#: Fields of a VM's ``network`` setting that only some network modes use (see
#: :attr:`NetworkModeDescriptor.honours`).
NETWORK_OPTIONS = frozenset({"subnet", "gateway", "auto_assign"})


@dataclass(frozen=True)
class NetworkModeDescriptor:
    """A network mode (``none``, ``bridged``, ``dhcp``, ``vsock`` ...).

    ``factory`` builds the :class:`NetworkMode` that attaches and detaches
    VMs (it may take the plugin's context). ``needs_ip`` tells the core to
    lease an address from its pool before launch. ``requires`` names the
    hypervisor capabilities the mode needs (``tap-nics`` for a tap NIC): a VM
    on a hypervisor lacking one is refused. ``publishes_ports`` says the mode
    honours a VM's ``expose``; ``honours`` which of the ``network`` options
    (:data:`NETWORK_OPTIONS`) it uses. A VM setting what its mode does not
    honour is refused, never silently ignored.
    """

    name: str
    factory: Callable[..., NetworkMode]
    needs_ip: bool = False
    requires: frozenset[str] = field(default_factory=frozenset)
    publishes_ports: bool = False
    honours: frozenset[str] = field(default_factory=frozenset)
    description: str = ""


@dataclass(frozen=True)
class ArtifactStream:
    """What a boot source opens: the bytes of an artifact, read by the core (ADR 0036).

    ``body`` is read with ``read1`` (or ``read``) until it returns ``b""`` and closed by the core.
    ``size`` is the whole artifact's length when known (the core refuses a body that ends short of
    it). ``offset`` is the byte of the artifact the body starts at: the ``offset`` the core asked
    for when the source resumes, else 0 (the core then starts over). ``validators`` are what the
    source can later recognise this copy by (HTTP's ``etag`` and ``last_modified``); the core hands
    them back with its next request. ``not_modified`` says the copy the core holds (named by those
    validators) is still current, and the body is empty. ``in_place`` names a host file the core may
    use where it is when the artifact has no checksum (plain local paths).
    """

    body: IO[bytes]
    size: int | None = None
    offset: int = 0
    validators: Mapping[str, str] = field(default_factory=dict)
    not_modified: bool = False
    in_place: Path | None = None


class OpenArtifact(Protocol):
    """A boot source's ``open``: the :class:`ArtifactStream` of ``url`` from byte ``offset`` on."""

    def __call__(
        self, url: str, *, offset: int, deadline: float, validators: Mapping[str, str]
    ) -> ArtifactStream:
        """Open ``url``; ``deadline`` is the ``time.monotonic()`` time the whole fetch must end by."""


@dataclass(frozen=True)
class BootSourceDescriptor:
    """A way to read boot media (kernel, initramfs, rootfs, disks) by URL scheme.

    ``open(url, offset=, deadline=, validators=)`` returns an :class:`ArtifactStream`; the core
    verifies, caches and shares what it reads (:mod:`volant_core.artifact_cache`).
    """

    name: str
    schemes: tuple[str, ...]
    open: OpenArtifact
    description: str = ""


@dataclass(frozen=True)
class DeviceDriverDescriptor:
    """A passthrough device driver (e.g. VFIO for PCI devices) for the devices of one ``bus``.

    ``factory`` builds the :class:`DeviceDriver` (it may take the plugin's context).
    """

    name: str
    factory: Callable[..., DeviceDriver]
    bus: str = "pci"
    description: str = ""


@dataclass(frozen=True)
class SeedBuilderDescriptor:
    """Builds a configuration disk for the guest (e.g. a cloud-init NoCloud seed).

    ``name`` is what a VM's ``cloud_init.seed_mode`` names; ``factory`` builds the
    :class:`SeedBuilder` (it may take the plugin's context).
    """

    name: str
    factory: Callable[..., SeedBuilder]
    description: str = ""


@dataclass(frozen=True)
class HostCheckResult:
    """The outcome of one host check: ``pass``, ``warn`` or ``fail``, what was seen and how to fix it."""

    status: Literal["pass", "warn", "fail"]
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class HostCheck:
    """A named check run by ``volar doctor``; ``run`` may take the plugin's context."""

    name: str
    run: Callable[..., HostCheckResult]


@dataclass(frozen=True)
class LaunchAdditions:
    """What a ``volant_prepare_launch`` implementation adds to a VM's launch."""

    kernel_args: tuple[str, ...] = ()
    disks: tuple[DiskSpec, ...] = ()
    pci_devices: tuple[PciDeviceSpec, ...] = ()
    devices: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class RouteDescriptor:
    """An HTTP route a plugin mounts on the API: a Falcon resource at ``path``."""

    path: str
    resource: Any
    suffix: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class NetworkAttachment:
    """What a network mode gives one VM: NICs for the hypervisor and arguments for the guest kernel."""

    nics: tuple[NicSpec, ...] = ()
    kernel_args: tuple[str, ...] = ()


class NetworkMode(Protocol):
    """Host side of a network mode, built by :attr:`NetworkModeDescriptor.factory`."""

    def attach(self, vm: VMView) -> NetworkAttachment:
        """Create the host resources (tap, bridge port ...) for ``vm`` before launch."""
        ...

    def detach(self, vm: VMView) -> None:
        """Remove what :meth:`attach` created. Idempotent: missing resources are fine."""
        ...


class NoNetwork:
    """A :class:`NetworkMode` that gives the VM no NIC and holds nothing on the host (the core's
    ``none``; modes that differ from it only in what they require of the hypervisor reuse it).
    """

    def attach(self, vm: VMView) -> NetworkAttachment:
        """Nothing to create."""
        return NetworkAttachment()

    def detach(self, vm: VMView) -> None:
        """Nothing to remove."""


class SeedBuilder(Protocol):
    """Builds a VM's configuration seed disk, built by :attr:`SeedBuilderDescriptor.factory`."""

    def build(self, vm: VMView, cloud_init: CloudInit, directory: Path) -> DiskSpec:
        """Write the seed image for ``vm`` into ``directory`` (empty, the VM's own) and describe it.

        The core attaches it read-only, last among the disks, and removes ``directory`` when the
        VM's resources are released (the seed is built again on every boot).
        """
        ...


class DeviceDriver(Protocol):
    """Host side of device passthrough, built by :attr:`DeviceDriverDescriptor.factory`."""

    def validate(self, vm: VMView, devices: Devices) -> None:
        """Refuse devices that cannot be passed through (ValidationError naming the field).

        Called with every configuration check (create, PATCH, rollback); must not change the host.
        """
        ...

    def attach(self, vm: VMView, devices: Devices) -> tuple[PciDeviceSpec, ...]:
        """Claim and prepare the devices for ``vm`` (e.g. bind them to vfio-pci) before launch."""
        ...

    def detach(self, vm: VMView) -> None:
        """Give back what :meth:`attach` claimed for ``vm``. Idempotent."""
        ...
