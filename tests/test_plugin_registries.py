"""A plugin registering a name (or an API path) another plugin holds is refused, and reported failed."""

from __future__ import annotations

import falcon

from volant_core import hookimpl
from volant_core.api.openapi.operations import operation
from volant_core.builtins import NoNetwork
from volant_core.descriptors import NetworkModeDescriptor, RouteDescriptor
from volant_core.plugins import CORE_PLUGIN_NAME
from volant_core.testing.daemon import running_daemon


class Squatter:
    """A plugin registering a network mode of its own and the core's ``none`` a second time."""

    @hookimpl
    def volant_network_modes(self) -> list[NetworkModeDescriptor]:
        """Register ``test-squatter-mode`` and ``none``, which the core plugin holds."""
        return [
            NetworkModeDescriptor("test-squatter-mode", factory=NoNetwork),
            NetworkModeDescriptor("none", factory=NoNetwork, needs_ip=True),
        ]


#: The path the well-behaved routing plugin mounts.
PING = "/api/v1/test-pinger/ping"


class Ping:
    """A plugin resource answering pings."""

    @operation()
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Answer a ping."""
        resp.media = {"pong": True}


class Pinger:
    """A plugin mounting :data:`PING`, registered before the failing plugins."""

    @hookimpl
    def volant_api_routes(self) -> list[RouteDescriptor]:
        """The ping route."""
        return [RouteDescriptor(PING, Ping())]


class PathSquatter:
    """A plugin registering a network mode of its own and a route at ``/healthz``, which the core
    serves: it passes the registration pass and is refused when its routes are mounted.
    """

    @hookimpl
    def volant_network_modes(self) -> list[NetworkModeDescriptor]:
        """Register ``test-path-squatter-mode``."""
        return [NetworkModeDescriptor("test-path-squatter-mode", factory=NoNetwork)]

    @hookimpl
    def volant_api_routes(self) -> list[RouteDescriptor]:
        """Mount ``/healthz`` again."""
        return [RouteDescriptor("/healthz", Ping())]


def test_a_plugin_registering_a_taken_name_is_reported_failed_and_keeps_nothing() -> None:
    with running_daemon() as daemon:
        installed = daemon.request("GET", "/api/v1/system/info").json()["network_modes"]
    failing = [
        ("test-pinger", Pinger()),
        ("test-squatter", Squatter()),
        ("test-path-squatter", PathSquatter()),
    ]
    with running_daemon(plugins=failing) as daemon:
        plugins = {p["name"]: p for p in daemon.request("GET", "/api/v1/system/plugins").json()["plugins"]}
        offered = daemon.request("GET", "/api/v1/system/info").json()["network_modes"]
        none_mode = daemon.daemon.plugins.registries.network_modes.get("none")
        healthz = daemon.request("GET", "/healthz").json()
        ping = daemon.request("GET", PING)
    assert "none" in installed and offered == installed  # nothing of either failed plugin
    assert not none_mode.needs_ip  # still the core's ``none``
    assert healthz == {"status": "ok"}  # still the core's ``/healthz``
    assert ping.status == 200 and ping.json() == {"pong": True}  # the other plugins keep theirs
    assert plugins[CORE_PLUGIN_NAME]["status"] == "loaded"
    assert plugins["test-pinger"]["status"] == "loaded"
    assert plugins["test-path-squatter"]["status"] == "failed"
    assert "/healthz is mounted already" in plugins["test-path-squatter"]["error"]
    assert plugins["test-squatter"]["status"] == "failed"
    error = plugins["test-squatter"]["error"]
    assert f"network mode 'none' is registered by plugin {CORE_PLUGIN_NAME!r} already" in error
