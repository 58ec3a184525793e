"""The registration pass as plugins meet it: a plugin registering a name (or an API path) another
plugin holds, or returning what its registration hook may not return, is refused and reported
failed with the reason; each registration call is traced like any other hook call.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import falcon
import pytest
from pydantic import BaseModel

from volant_core import hookimpl
from volant_core.api.openapi.operations import operation
from volant_core.builtins import NoNetwork
from volant_core.context import PluginContext
from volant_core.descriptors import NetworkModeDescriptor, RouteDescriptor
from volant_core.errors import NotFoundError
from volant_core.hookcall import TRACE_ENV
from volant_core.plugins import CORE_PLUGIN_NAME, load_plugins
from volant_core.registry import Registry
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


def test_an_unknown_name_is_refused_listing_every_registered_one() -> None:
    modes: Registry[NetworkModeDescriptor] = Registry("network mode")
    with pytest.raises(NotFoundError) as refused:
        modes.get("bridged", field="network.mode")
    assert refused.value.message == (
        "unknown network mode 'bridged' (pip install volant-network-bridged); choose one of: none installed"
    )
    for name in ("vxlan", "none"):
        modes.add(name, NetworkModeDescriptor(name, factory=NoNetwork), owner="test-modes")
    with pytest.raises(NotFoundError) as refused:
        modes.get("bridged", field="network.mode")
    assert refused.value.message == (
        "unknown network mode 'bridged' (pip install volant-network-bridged); choose one of: none, vxlan"
    )
    assert refused.value.field == "network.mode"


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


class NotAList:
    """TEST plugin: its ``volant_network_modes`` returns one descriptor instead of a list of them."""

    @hookimpl
    def volant_network_modes(self) -> NetworkModeDescriptor:
        """``test-not-a-list-mode``, bare."""
        return NetworkModeDescriptor("test-not-a-list-mode", factory=NoNetwork)


class WrongItem:
    """TEST plugin: its ``volant_network_modes`` list holds a descriptor and a mode's bare name."""

    @hookimpl
    def volant_network_modes(self) -> list[Any]:
        """``test-wrong-item-mode`` and ``"bridged"``."""
        return [NetworkModeDescriptor("test-wrong-item-mode", factory=NoNetwork), "bridged"]


class ShipsManifests:
    """TEST plugin: ships the manifests it is given (dicts, or paths of JSON files)."""

    def __init__(self, *manifests: dict[str, Any] | Path) -> None:
        self.manifests = list(manifests)

    @hookimpl
    def volant_runtime_manifests(self) -> list[Any]:
        """The manifests."""
        return self.manifests


class _Zone(BaseModel):
    """Settings with one field."""

    zone: str = "a"


class _BadlyNamed(BaseModel):
    """Settings whose field cannot be a variable's name."""

    Zone: str = "a"


class _Threads(BaseModel):
    """Settings whose field, for a plugin named ``api``, would be volantd's ``VOLANT_API_THREADS``."""

    threads: int = 1


class ShipsSettings:
    """TEST plugin: its ``volant_settings`` returns the model classes it is given."""

    def __init__(self, *models: type[BaseModel]) -> None:
        self.models = list(models)

    @hookimpl
    def volant_settings(self) -> list[type[BaseModel]]:
        """The models."""
        return self.models


class RaisingModes:
    """TEST plugin: its ``volant_network_modes`` raises (a registration bug that is not a wrong return)."""

    @hookimpl
    def volant_network_modes(self) -> list[NetworkModeDescriptor]:
        """Fail."""
        raise RuntimeError("registration broke")


class TwiceMode:
    """TEST plugin: its ``volant_network_modes`` registers one name twice."""

    @hookimpl
    def volant_network_modes(self) -> list[NetworkModeDescriptor]:
        """``test-twice-a`` and ``test-twice-b``, each twice."""
        return [
            NetworkModeDescriptor(name, factory=NoNetwork) for name in ("test-twice-b", "test-twice-a")
        ] * 2


def test_a_registration_returning_what_its_hook_may_not_fails_the_plugin_saying_what_it_got(
    tmp_path: Path,
) -> None:
    """The error ``/api/v1/system/plugins`` gives each failed plugin, whole: the hook, what it must
    return and what it returned; for a manifest, the manifest's own problem, or why its file could
    not be read.
    """
    missing = tmp_path / "missing.json"
    unreadable = tmp_path / "a-directory.json"
    unreadable.mkdir()
    failing = [
        ("test-not-a-list", NotAList()),
        ("test-wrong-item", WrongItem()),
        ("test-no-workload", ShipsManifests({"name": "broken-runtime", "version": "1"})),
        ("test-missing-file", ShipsManifests(missing)),
        ("test-directory-file", ShipsManifests(unreadable)),
        ("test-two-models", ShipsSettings(_Zone, _Zone)),
        ("test-badly-named", ShipsSettings(_BadlyNamed)),
        ("test-raising", RaisingModes()),
        ("test-twice", TwiceMode()),
        ("test-not-a-model", ShipsSettings(dict)),  # type: ignore[arg-type]
        ("api", ShipsSettings(_Threads)),
    ]
    with running_daemon(plugins=failing) as daemon:
        plugins = {p["name"]: p for p in daemon.request("GET", "/api/v1/system/plugins").json()["plugins"]}
        offered = daemon.request("GET", "/api/v1/system/info").json()["network_modes"]
    invalid = "volant_runtime_manifests returned an invalid manifest"
    assert {name: (plugins[name]["status"], plugins[name]["error"]) for name, _ in failing} == {
        "test-not-a-list": ("failed", "volant_network_modes must return a list, got NetworkModeDescriptor"),
        "test-wrong-item": (
            "failed",
            "volant_network_modes must return NetworkModeDescriptor items, got 'bridged'",
        ),
        "test-no-workload": ("failed", f"{invalid}: workload: is required"),
        "test-missing-file": ("failed", f"{invalid}: [Errno 2] No such file or directory: '{missing}'"),
        "test-directory-file": ("failed", f"{invalid}: [Errno 21] Is a directory: '{unreadable}'"),
        "test-two-models": ("failed", "volant_settings must return at most one model class"),
        "test-badly-named": (
            "failed",
            "volant_settings: field 'Zone' must be lower-case letters, digits and '_'",
        ),
        "test-raising": ("failed", "raised RuntimeError: registration broke"),
        "test-twice": ("failed", "volant_network_modes returned test-twice-a, test-twice-b twice"),
        "test-not-a-model": (
            "failed",
            "volant_settings must return pydantic model classes, got <class 'dict'>",
        ),
        "api": (
            "failed",
            "volant_settings: VOLANT_API_THREADS is a setting of volantd itself; rename the field",
        ),
    }
    assert "test-wrong-item-mode" not in offered  # nothing of a failed plugin is kept
    assert "test-twice-a" not in offered


class TwoModes:
    """TEST plugin: registers a network mode and a route, and nothing else."""

    @hookimpl
    def volant_network_modes(self) -> list[NetworkModeDescriptor]:
        """``test-two-modes-mode``."""
        return [NetworkModeDescriptor("test-two-modes-mode", factory=NoNetwork)]

    @hookimpl
    def volant_api_routes(self) -> list[RouteDescriptor]:
        """The ping route at ``/api/v1/test-two-modes/ping``."""
        return [RouteDescriptor("/api/v1/test-two-modes/ping", Ping())]


def test_hook_tracing_names_each_registration_call_with_its_hook_and_plugin(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With ``VOLANT_TRACE_HOOKS`` set, the registration pass logs each registration hook a plugin
    implements as it calls it, like every other hook call (what a plugin author reads to see
    whether, and in which order, volantd asked their plugin).
    """
    monkeypatch.setenv(TRACE_ENV, "1")
    caplog.set_level(logging.INFO, logger="volant_core.hookcall")
    plugins = load_plugins(disabled=(), extra=[("test-two-modes", TwoModes())])
    traced = [
        record.getMessage()
        for record in caplog.records
        if record.name == "volant_core.hookcall" and record.getMessage().endswith("plugin test-two-modes")
    ]
    assert plugins.info["test-two-modes"].status == "loaded"
    assert traced == [  # the registration hooks in the order of their names
        "hook volant_api_routes -> plugin test-two-modes",
        "hook volant_network_modes -> plugin test-two-modes",
    ]


class AsksForContext:
    """TEST plugin: its registration hook asks for ``context``, which registration hooks are not given
    (they run before any plugin has a context).
    """

    @hookimpl
    def volant_network_modes(self, context: PluginContext) -> list[NetworkModeDescriptor]:
        """``test-asks-for-context-mode``."""
        return [NetworkModeDescriptor("test-asks-for-context-mode", factory=NoNetwork)]


def test_a_registration_hook_asking_for_an_argument_fails_its_plugin_when_loaded() -> None:
    """pluggy refuses an implementation naming an argument its specification lacks, and the
    registration hooks take none: such a plugin is failed before the registration pass, which is
    why that pass never has arguments to give.
    """
    plugins = load_plugins(disabled=(), extra=[("test-asks-for-context", AsksForContext())])
    info = plugins.info["test-asks-for-context"]
    assert info.status == "failed"
    assert "Argument(s) {'context'} are declared in the hookimpl but can not be found in the hookspec" in (
        info.error or ""
    )
    assert "test-asks-for-context-mode" not in plugins.registries.network_modes


def _runtime(name: str) -> dict[str, Any]:
    """A valid runtime manifest named ``name``."""
    workload = {"type": "http", "base_url": "http://127.0.0.1:8000", "entrypoint": ["/bin/true"]}
    return {"name": name, "version": "1.0.0", "runtime": name, "workload": workload}


def test_the_runtimes_every_plugin_ships_are_all_offered() -> None:
    """Each plugin's runtimes add to the others': the last plugin registered does not take the
    place of those before it.
    """
    shipping = [
        ("test-ships-a", ShipsManifests(_runtime("shipped-a"))),
        ("test-ships-b", ShipsManifests(_runtime("shipped-b"), _runtime("shipped-c"))),
    ]
    with running_daemon(plugins=shipping) as daemon:
        listed = {r["name"]: r["source"] for r in daemon.request("GET", "/api/v1/plugins").json()["plugins"]}
    assert {name: listed.get(name) for name in ("shipped-a", "shipped-b", "shipped-c")} == dict.fromkeys(
        ("shipped-a", "shipped-b", "shipped-c"), "package:in-process"
    )
