"""``GET /api/v1/vms`` filters, sorting and paging, and the ``/api/v1/system/*`` routes, over HTTP."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest

from volant_core import __version__
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import NAME as HOST_BACKEND
from volant_core.testing.hostvm import host_process_daemon

#: The network the VMs lease their addresses from.
SUBNET = ipaddress.IPv4Network("10.78.0.0/28")
#: VM name -> runtime manifest; "b-two" ends up stopped, the others running.
VMS = {"c-one": "hello-host", "a-web": "hello-host", "b-two": "hello-other"}


@pytest.fixture
def api(host_manifest: dict[str, Any], leased_ip_mode: Any) -> Iterator[RunningDaemon]:
    """A daemon with two runtimes installed and the VMs of :data:`VMS`, created in that order, each
    with an IP address from :data:`SUBNET`.
    """
    other = copy.deepcopy(host_manifest)
    other["name"] = other["runtime"] = "hello-other"
    network = {"network_mode": leased_ip_mode.mode, "subnet": SUBNET, "host_ip": SUBNET[1]}
    with host_process_daemon(plugins=[leased_ip_mode.registration], stop_timeout=5, **network) as daemon:
        for manifest in (host_manifest, other):
            assert daemon.request("POST", "/api/v1/plugins", manifest).status == 201
        for name, plugin in VMS.items():
            assert daemon.request("POST", "/api/v1/vms", {"name": name, "plugin": plugin}).status == 201
        for name in VMS:
            daemon.wait_for_status(name, {"running"})
        assert daemon.request("POST", "/api/v1/vms/b-two/stop").status == 200
        yield daemon


def names(api: RunningDaemon, query: str = "") -> tuple[list[str], int]:
    """The VM names ``GET /api/v1/vms?<query>`` answers, and its ``X-Total-Count``."""
    reply = api.request("GET", f"/api/v1/vms?{query}")
    assert reply.status == 200, reply.body
    return [vm["name"] for vm in reply.json()], int(
        {k.lower(): v for k, v in reply.headers.items()}["x-total-count"]
    )


def test_list_filters_sorts_and_pages(api: RunningDaemon) -> None:
    assert names(api) == (["c-one", "a-web", "b-two"], 3)
    assert names(api, "status=RUNNING") == (["c-one", "a-web"], 2)
    assert names(api, "status=stopped,crashed") == (["b-two"], 1)
    assert names(api, "status=stopped&status=running") == (["c-one", "a-web", "b-two"], 3)
    assert names(api, "runtime=Hello-Other") == (["b-two"], 1)
    assert names(api, "plugin=hello-host") == (["c-one", "a-web"], 2)
    assert names(api, "q=WEB") == (["a-web"], 1)
    assert names(api, "q=other") == (["b-two"], 1)  # runtime substring
    ip = api.request("GET", "/api/v1/vms/c-one").json()["ip_address"]
    assert ipaddress.ip_address(ip) in SUBNET
    assert names(api, f"q={ip}") == (["c-one"], 1)
    assert names(api, "sort=name") == (["a-web", "b-two", "c-one"], 3)
    assert names(api, "sort=name&order=DESC") == (["c-one", "b-two", "a-web"], 3)
    assert names(api, "sort=status&order=asc")[0] == ["c-one", "a-web", "b-two"]
    assert names(api, "sort=created_at&order=desc")[0] == ["b-two", "a-web", "c-one"]
    assert names(api, "sort=name&limit=1&offset=1") == (["b-two"], 3)
    assert names(api, "status=running&limit=0") == ([], 2)
    assert names(api, "offset=5") == ([], 3)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=running,sleeping", "status"),
        ("sort=ip", "sort"),
        ("order=up", "order"),
        ("limit=-1", "limit"),
        ("limit=x", "limit"),
        ("offset=-3", "offset"),
    ],
)
def test_list_rejects_bad_parameters(api: RunningDaemon, query: str, field: str) -> None:
    reply = api.request("GET", f"/api/v1/vms?{query}")
    assert reply.status == 422, reply.body
    assert reply.json()["error"]["details"][0]["field"] == field


def test_system_routes(api: RunningDaemon) -> None:
    status = api.request("GET", "/api/v1/system/status").json()
    assert status["status"] == "ok" and status["vm_count"] == 3 and status["version"] == __version__
    assert status["uptime_s"] >= 0

    info = api.request("GET", "/api/v1/system/info").json()
    settings = api.daemon.settings
    assert info["version"] == __version__
    assert info["api_listen"] == settings.api_listen
    assert info["default_hypervisor"] == HOST_BACKEND and HOST_BACKEND in info["hypervisors"]
    assert info["default_network_mode"] == settings.network_mode in info["network_modes"]
    assert info["state_dir"] == str(api.state_dir)

    summary = api.request("GET", "/api/v1/system/summary").json()
    assert summary["total_vms"] == 3
    assert summary["by_status"] == {"running": 2, "stopped": 1}
    assert summary["by_runtime"] == {"hello-host": 2, "hello-other": 1}
    plugins = {p["name"]: p for p in summary["plugins"]}
    assert {"hello-host", "hello-other"} <= set(plugins)
    assert plugins["hello-other"]["enabled"] is True
    assert summary["total_plugins"] == len(summary["plugins"])
    assert summary["enabled_plugins"] == sum(p["enabled"] for p in summary["plugins"])
