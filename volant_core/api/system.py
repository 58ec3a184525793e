"""Health and system resources."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import falcon

from volant_core import __version__
from volant_core.api.openapi.operations import operation
from volant_core.api.responses import (
    HealthStatus,
    SystemInfo,
    SystemPluginsResource,
    SystemStatus,
    SystemSummary,
)
from volant_core.orchestrator import Orchestrator
from volant_core.plugins import Plugins
from volant_core.registry import Registries
from volant_core.runtimes import RuntimeCatalog


class Health:
    """``/healthz``: the daemon answers (on the server's event loop: it reads nothing and waits
    for nothing, so a liveness probe answers even while every API thread is busy).
    """

    answers_on_loop = True

    @operation(response=HealthStatus)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Always ``{"status": "ok"}`` while the daemon serves."""
        resp.media = {"status": "ok"}


class SystemPlugins:
    """``/api/v1/system/plugins``: code plugins found through entry points, broken ones included."""

    def __init__(self, plugins: Plugins) -> None:
        self.plugins = plugins

    @operation(response=SystemPluginsResource)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Name, distribution, version, status, error and recent hook errors of every plugin."""
        resp.media = {"version": __version__, "plugins": [p.to_dict() for p in self.plugins.info.values()]}


class SystemStatusResource:
    """``/api/v1/system/status``: the daemon is up, since when, and how many VMs it knows."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator
        self.started = time.monotonic()

    @operation(response=SystemStatus)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """``ok``, the VM count, seconds since the API started and the version."""
        resp.media = {
            "status": "ok",
            "vm_count": self.orchestrator.store.vms.count(),
            "uptime_s": round(time.monotonic() - self.started, 3),
            "version": __version__,
        }


class SystemInfoResource:
    """``/api/v1/system/info``: the daemon's configuration and registered backends."""

    def __init__(self, orchestrator: Orchestrator, plugins: Plugins) -> None:
        self.orchestrator = orchestrator
        self.plugins = plugins

    @operation(response=SystemInfo)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Version, listen address, the extensions plugins registered (hypervisors with their
        capabilities, network modes with what they honour, device drivers, seed builders, boot
        sources) and the defaults, state directory.
        """
        settings = self.orchestrator.settings
        registries = self.plugins.registries
        resp.media = {
            "version": __version__,
            "api_listen": settings.api_listen,
            "hypervisors": registries.hypervisors.names(),
            "network_modes": registries.network_modes.names(),
            "default_hypervisor": settings.hypervisor,
            "default_network_mode": settings.network_mode,
            "state_dir": str(settings.state_dir),
            "extensions": extensions_of(registries),
        }


def extensions_of(registries: Registries) -> dict[str, list[dict[str, Any]]]:
    """What each installed plugin registered, by kind, with the plugin that registered it."""
    return {
        "hypervisors": [{**d.to_dict(), "plugin": owner} for owner, d in registries.hypervisors.items()],
        "network_modes": [
            {
                "name": d.name,
                "plugin": owner,
                "description": d.description,
                "leases_ip": d.needs_ip,
                "requires": sorted(d.requires),
                "publishes_ports": d.publishes_ports,
                "honours": sorted(d.honours),
            }
            for owner, d in registries.network_modes.items()
        ],
        "device_drivers": [
            {"name": d.name, "plugin": owner, "bus": d.bus, "description": d.description}
            for owner, d in registries.device_drivers.items()
        ],
        "seed_builders": [
            {"name": d.name, "plugin": owner, "description": d.description}
            for owner, d in registries.seed_builders.items()
        ],
        "boot_sources": [
            {"name": d.name, "plugin": owner, "schemes": list(d.schemes), "description": d.description}
            for owner, d in registries.boot_sources.items()
        ],
    }


class SystemSummaryResource:
    """``/api/v1/system/summary``: VM counts and runtime manifests at a glance."""

    def __init__(self, orchestrator: Orchestrator, catalog: RuntimeCatalog) -> None:
        self.orchestrator = orchestrator
        self.catalog = catalog

    @operation(response=SystemSummary)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """VMs in total, by status and by runtime (lower-case keys); runtime manifests and their state."""
        records = self.orchestrator.store.vms.list()
        runtimes = self.catalog.list()
        resp.media = {
            "total_vms": len(records),
            "by_status": dict(Counter(r.status.lower() for r in records)),
            "by_runtime": dict(Counter(r.runtime.lower() for r in records)),
            "total_plugins": len(runtimes),
            "enabled_plugins": sum(entry.enabled for entry in runtimes),
            "plugins": [
                {"name": e.name, "version": e.manifest.version, "enabled": e.enabled} for e in runtimes
            ],
        }
