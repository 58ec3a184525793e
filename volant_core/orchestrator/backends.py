"""The plugins a VM runs on: hypervisor launchers and network modes, each built once."""

from __future__ import annotations

import threading

from volant_core.descriptors import NetworkMode, NetworkModeDescriptor
from volant_core.errors import ConflictError
from volant_core.launch import Launcher
from volant_core.manifest import Network
from volant_core.orchestrator.vmconfig import VMConfig
from volant_core.registry import Registries
from volant_core.settings import Settings
from volant_core.vm import VMView


class Backends:
    """Resolves names in a VM configuration to working plugin objects (lazily, once each)."""

    def __init__(self, settings: Settings, registries: Registries) -> None:
        self._settings = settings
        self._registries = registries
        self._lock = threading.Lock()
        self._launchers: dict[str, Launcher] = {}
        self._modes: dict[str, NetworkMode] = {}

    def launcher(self, name: str, *, field: str | None = None) -> Launcher:
        """The launcher of hypervisor ``name``; 404 if unknown, 409 if it cannot run on this host."""
        with self._lock:
            if name not in self._launchers:
                descriptor = self._registries.hypervisors.get(name, field=field)
                problem = descriptor.available() if descriptor.available else None
                if problem:
                    raise ConflictError(
                        f"hypervisor {name!r} cannot run on this host: {problem}", field=field
                    )
                self._launchers[name] = descriptor.factory()
            return self._launchers[name]

    def mode(self, name: str, *, field: str | None = None) -> NetworkModeDescriptor:
        """The registration of network mode ``name``; 404 naming ``field`` if unknown."""
        return self._registries.network_modes.get(name, field=field)

    def network_mode(self, name: str) -> NetworkMode:
        """The host side of network mode ``name``."""
        with self._lock:
            if name not in self._modes:
                self._modes[name] = self.mode(name).factory()
            return self._modes[name]

    def detach_network(self, view: VMView) -> None:
        """Release what the network mode the VM booted with (``view.network_mode``) holds on the host."""
        self.network_mode(view.network_mode).detach(view)

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
