"""A plugin registering a name another plugin holds is refused, and reported failed."""

from __future__ import annotations

from volant_core import hookimpl
from volant_core.builtins import NoNetwork
from volant_core.descriptors import NetworkModeDescriptor
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


def test_a_plugin_registering_a_taken_name_is_reported_failed_and_keeps_nothing() -> None:
    with running_daemon() as daemon:
        installed = daemon.request("GET", "/api/v1/system/info").json()["network_modes"]
    with running_daemon(plugins=[("test-squatter", Squatter())]) as daemon:
        plugins = {p["name"]: p for p in daemon.request("GET", "/api/v1/system/plugins").json()["plugins"]}
        offered = daemon.request("GET", "/api/v1/system/info").json()["network_modes"]
        none_mode = daemon.daemon.plugins.registries.network_modes.get("none")
    assert "none" in installed and offered == installed  # nothing of the failed plugin
    assert not none_mode.needs_ip  # still the core's ``none``
    assert plugins[CORE_PLUGIN_NAME]["status"] == "loaded"
    assert plugins["test-squatter"]["status"] == "failed"
    error = plugins["test-squatter"]["error"]
    assert f"network mode 'none' is registered by plugin {CORE_PLUGIN_NAME!r} already" in error
