"""Name -> descriptor registries built from the registration hooks.

Each extension-point hook (``volant_hypervisors``, ``volant_network_modes`` ...)
is called plugin by plugin, so a plugin whose hook raises is marked failed
without hiding what the others registered. A name registered twice is refused:
the second plugin is marked failed with a message naming both.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from volant_core.descriptors import (
    BootSourceDescriptor,
    DeviceDriverDescriptor,
    HostCheck,
    NetworkModeDescriptor,
    SeedBuilderDescriptor,
)
from volant_core.errors import NotFoundError
from volant_core.launch import HypervisorDescriptor
from volant_core.plugins import PluginHost

T = TypeVar("T")


class Registry(Generic[T]):
    """Descriptors of one kind, by name, each remembering which plugin registered it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}

    def add(self, name: str, item: T, owner: str) -> str | None:
        """Add ``item``; return an error message instead if ``name`` is taken."""
        if name in self._items:
            return (
                f"{self.kind} {name!r} is registered by plugin {self._owners[name]!r} already; "
                f"uninstall or disable one of them"
            )
        self._items[name] = item
        self._owners[name] = owner
        return None

    def get(self, name: str, *, field: str | None = None) -> T:
        """The descriptor named ``name``; NotFoundError listing the valid names otherwise."""
        try:
            return self._items[name]
        except KeyError:
            choices = ", ".join(sorted(self._items)) or "none installed"
            raise NotFoundError(
                f"unknown {self.kind} {name!r}; choose one of: {choices}", field=field
            ) from None

    def owner(self, name: str) -> str:
        """Name of the plugin that registered ``name``."""
        return self._owners[name]

    def drop_owner(self, owner: str) -> None:
        """Forget everything ``owner`` registered (it failed after registering some of it)."""
        for name in [n for n, o in self._owners.items() if o == owner]:
            del self._items[name], self._owners[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Registries:
    """Every extension-point registry of one daemon."""

    hypervisors: Registry[HypervisorDescriptor]
    network_modes: Registry[NetworkModeDescriptor]
    boot_sources: Registry[BootSourceDescriptor]
    device_drivers: Registry[DeviceDriverDescriptor]
    seed_builders: Registry[SeedBuilderDescriptor]
    host_checks: Registry[HostCheck]
    runtime_manifests: list[tuple[str, Any]]


def _fill(host: PluginHost, registry: Registry[Any], hook_name: str) -> Registry[Any]:
    for owner, items in host.call_each(hook_name):
        for item in items or []:
            error = registry.add(item.name, item, owner)
            if error:
                host.fail(owner, error)
    return registry


def build_registries(host: PluginHost) -> Registries:
    """Call every registration hook and index the results by name.

    A plugin that fails at any hook keeps nothing it registered at the others.
    """
    registries = Registries(
        hypervisors=_fill(host, Registry("hypervisor"), "volant_hypervisors"),
        network_modes=_fill(host, Registry("network mode"), "volant_network_modes"),
        boot_sources=_fill(host, Registry("boot source"), "volant_boot_sources"),
        device_drivers=_fill(host, Registry("device driver"), "volant_device_drivers"),
        seed_builders=_fill(host, Registry("seed builder"), "volant_seed_builders"),
        host_checks=_fill(host, Registry("host check"), "volant_host_checks"),
        runtime_manifests=[
            (owner, item)
            for owner, items in host.call_each("volant_runtime_manifests")
            for item in items or []
        ],
    )
    failed = {name for name, info in host.plugins.items() if info.status == "failed"}
    for registry in (
        registries.hypervisors,
        registries.network_modes,
        registries.boot_sources,
        registries.device_drivers,
        registries.seed_builders,
        registries.host_checks,
    ):
        for owner in failed:
            registry.drop_owner(owner)
    registries.runtime_manifests = [(o, m) for o, m in registries.runtime_manifests if o not in failed]
    return registries
