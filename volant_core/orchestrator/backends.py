"""The plugin objects a VM runs on: launchers, network modes, seed builders and device drivers,
each built once, lazily, by its descriptor's factory with its plugin's context.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from volant_core.context import call_with_context
from volant_core.descriptors import DeviceDriver, NetworkMode, NetworkModeDescriptor, SeedBuilder
from volant_core.errors import ConflictError, ValidationError
from volant_core.launch import HypervisorDescriptor, Launcher
from volant_core.manifest import Network
from volant_core.orchestrator.vmconfig import VMConfig
from volant_core.plugins import Plugins
from volant_core.registry import Registry, install_hint
from volant_core.settings import Settings

T = TypeVar("T")


class Backends:
    """Resolves names in a VM configuration to working plugin objects (lazily, once each)."""

    def __init__(self, settings: Settings, plugins: Plugins) -> None:
        self._settings = settings
        self._plugins = plugins
        self._registries = plugins.registries
        self._lock = threading.Lock()
        self._built: dict[tuple[str, str], Any] = {}

    def hypervisor(self, name: str, *, field: str | None = None) -> HypervisorDescriptor:
        """The registration of hypervisor ``name``; 404 naming ``field`` (and the package) if unknown."""
        return self._registries.hypervisors.get(name, field=field)

    def launcher(self, name: str, *, field: str | None = None) -> Launcher:
        """The launcher of hypervisor ``name``; 404 if unknown, 409 if it cannot run on this host."""
        descriptor = self.hypervisor(name, field=field)
        context = self._plugins.context(self._registries.hypervisors.owner(name))
        if descriptor.available is not None and (problem := call_with_context(descriptor.available, context)):
            raise ConflictError(f"hypervisor {name!r} cannot run on this host: {problem}", field=field)
        return self._build(self._registries.hypervisors, name, descriptor.factory)

    def mode(self, name: str, *, field: str | None = None) -> NetworkModeDescriptor:
        """The registration of network mode ``name``; 404 naming ``field`` if unknown."""
        return self._registries.network_modes.get(name, field=field)

    def network_mode(self, name: str) -> NetworkMode:
        """The host side of network mode ``name``."""
        return self._build(self._registries.network_modes, name, self.mode(name).factory)

    def seed_builder(self, name: str, *, field: str | None = None) -> SeedBuilder:
        """The seed builder ``name`` (a VM's ``cloud_init.seed_mode``)."""
        descriptor = self._registries.seed_builders.get(name, field=field)
        return self._build(self._registries.seed_builders, name, descriptor.factory)

    def device_driver(self, bus: str, *, field: str) -> DeviceDriver:
        """The device driver of ``bus``; 422 naming ``field`` and the package when none is installed."""
        descriptor = self._registries.device_driver_for(bus)
        if descriptor is None:
            raise ValidationError(
                f"{field}: no device driver for {bus} devices is installed"
                f"{install_hint('device driver', bus) or ''}",
                field=field,
            )
        return self._build(self._registries.device_drivers, descriptor.name, descriptor.factory)

    def hypervisor_of(self, config: VMConfig) -> str:
        """The hypervisor ``config`` names, else the daemon's default."""
        return config.hypervisor or self._settings.hypervisor

    def network_of(self, config: VMConfig) -> Network:
        """The network ``config`` sets, else the manifest's, else the daemon's default mode."""
        return config.network or config.manifest.network or Network(mode=self._settings.network_mode)

    def resolved(self, config: VMConfig) -> VMConfig:
        """``config`` with its hypervisor and network filled in (what is stored)."""
        return config.model_copy(
            update={"hypervisor": self.hypervisor_of(config), "network": self.network_of(config)}
        )

    def _build(self, registry: Registry[Any], name: str, factory: Callable[..., T]) -> T:
        key = (registry.kind, name)
        with self._lock:
            if key not in self._built:
                context = self._plugins.context(registry.owner(name))
                self._built[key] = call_with_context(factory, context)
            built: T = self._built[key]
            return built
