"""Registration records returned by the extension-point hooks.

Each ``volant_<kind>`` registration hook returns a list of these frozen records;
:mod:`volant_core.registry` indexes them by ``name`` and refuses duplicates.
Factories are called lazily, so registering costs nothing until a record is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from volant_core.launch import DiskSpec, HypervisorDescriptor, NicSpec

if TYPE_CHECKING:
    from volant_core.vm import VMView

__all__ = [
    "BootSourceDescriptor",
    "DeviceDriverDescriptor",
    "HostCheck",
    "HostCheckResult",
    "HypervisorDescriptor",
    "LaunchAdditions",
    "NetworkAttachment",
    "NetworkMode",
    "NetworkModeDescriptor",
    "RouteDescriptor",
    "SeedBuilderDescriptor",
]


@dataclass(frozen=True)
class NetworkModeDescriptor:
    """A network mode (``none``, ``bridged``, ``dhcp``, ``vsock`` ...).

    ``needs_ip`` tells the orchestrator to lease an address from the pool
    before launch; ``needs_tap`` that the mode attaches a tap NIC. ``factory``
    builds the object that prepares and releases host resources for one VM.
    """

    name: str
    factory: Callable[[], NetworkMode]
    needs_ip: bool = False
    needs_tap: bool = False
    description: str = ""


@dataclass(frozen=True)
class BootSourceDescriptor:
    """A way to fetch boot media (kernel, initramfs, rootfs, disks) by URL scheme.

    ``fetch(url, checksum, dest_dir)`` returns the local path of the verified artifact.
    """

    name: str
    schemes: tuple[str, ...]
    fetch: Callable[[str, str | None, Path], Path]
    description: str = ""


@dataclass(frozen=True)
class DeviceDriverDescriptor:
    """A passthrough device driver (e.g. VFIO for PCI devices)."""

    name: str
    factory: Callable[[], Any]
    description: str = ""


@dataclass(frozen=True)
class SeedBuilderDescriptor:
    """Builds a configuration disk for the guest (e.g. a cloud-init NoCloud seed)."""

    name: str
    build: Callable[[VMView, Path], DiskSpec | None]
    description: str = ""


@dataclass(frozen=True)
class HostCheckResult:
    """The outcome of one host check: ``pass``, ``warn`` or ``fail``, what was seen and how to fix it."""

    status: Literal["pass", "warn", "fail"]
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class HostCheck:
    """A named check run by ``volar doctor``."""

    name: str
    run: Callable[[], HostCheckResult]


@dataclass(frozen=True)
class LaunchAdditions:
    """What a ``volant_prepare_launch`` implementation adds to a VM's launch."""

    kernel_args: tuple[str, ...] = ()
    disks: tuple[DiskSpec, ...] = ()
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
