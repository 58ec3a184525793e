"""Health and system resources."""

from __future__ import annotations

import falcon

from volant_core import __version__
from volant_core.api.openapi.operations import operation
from volant_core.api.responses import HealthStatus, SystemPluginsResource
from volant_core.plugins import PluginHost


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
