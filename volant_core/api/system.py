"""Health and system resources."""

from __future__ import annotations

import time
from collections import Counter

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
from volant_core.plugins import PluginHost
from volant_core.runtimes import RuntimeCatalog


class Health:
    """``/healthz``: the daemon answers."""

    @operation(response=HealthStatus)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Always ``{"status": "ok"}`` while the daemon serves."""
        resp.media = {"status": "ok"}


class SystemPlugins:
    """``/api/v1/system/plugins``: code plugins found through entry points, broken ones included."""

    def __init__(self, host: PluginHost) -> None:
        self.host = host

    @operation(response=SystemPluginsResource)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Name, distribution, version, status and error of every plugin."""
        resp.media = {"version": __version__, "plugins": [p.to_dict() for p in self.host.plugins.values()]}


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

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    @operation(response=SystemInfo)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Version, listen address, hypervisors and network modes (registered, default), state directory."""
        settings = self.orchestrator.settings
        registries = self.orchestrator.registries
        resp.media = {
            "version": __version__,
            "api_listen": settings.api_listen,
            "hypervisors": registries.hypervisors.names(),
            "network_modes": registries.network_modes.names(),
            "default_hypervisor": settings.hypervisor,
            "default_network_mode": settings.network_mode,
            "state_dir": str(settings.state_dir),
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
