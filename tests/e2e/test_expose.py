"""Port publishing on a booted bridged guest: volantd runs inside a network namespace of the test's
own, with a bridge the test makes; HTTP to the host's published port reaches the guest's workload,
and the nftables rules follow the VM through stop, start, a daemon restart and delete.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from volant_core.guest import GuestArtifacts
from volant_core.portmap import PortTable, PublishedPort
from volant_core.sdk import tap_name
from volant_core.testing.cli import run_volar
from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.netns import NetworkNamespace, network_namespace
from volant_core.testing.pytest_plugin import require_qemu

pytestmark = pytest.mark.e2e

BRIDGE = "vbr0"
HOST_IP = "192.168.127.1"  # the daemon's default VOLANT_HOST_IP, on the bridge
HOST_PORT = 18080
WORKLOAD_PORT = 8000
EXPOSE = [{"name": "http", "port": WORKLOAD_PORT, "host_port": HOST_PORT}]


@dataclass
class Setup:
    """The namespace (entered by the test thread), its daemon, and the ruleset before any VM."""

    ns: NetworkNamespace
    daemon: RunningDaemon
    empty_ruleset: str


def public_manifest(hello: dict[str, Any]) -> dict[str, Any]:
    """hello-http as ``hello-public``: its workload listens on 0.0.0.0 (reachable from the host) and
    the manifest publishes it on host port 18080.
    """
    *command, source = hello["workload"]["entrypoint"]
    assert '("127.0.0.1", 8000)' in source
    public = source.replace('("127.0.0.1", 8000)', '("0.0.0.0", 8000)')
    workload = {**hello["workload"], "entrypoint": [*command, public]}
    return {
        **hello,
        "name": "hello-public",
        "runtime": "hello-public",
        "workload": workload,
        "expose": EXPOSE,
    }


@pytest.fixture(scope="module")
def setup(volant_guest: GuestArtifacts, hello_manifest_module: dict[str, Any]) -> Iterator[Setup]:
    """A namespace with the bridge, volantd inside it in bridged mode, the public manifest installed."""
    require_qemu()
    with network_namespace() as ns:
        ns.ipr.link("add", ifname=BRIDGE, kind="bridge")
        (index,) = ns.ipr.link_lookup(ifname=BRIDGE)
        ns.ipr.addr("add", index=index, address=HOST_IP, prefixlen=24)
        ns.ipr.link("set", index=index, state="up")
        try:
            with ns.enter(), running_daemon(volant_guest, network_mode="bridged") as daemon:
                manifest = public_manifest(hello_manifest_module)
                assert daemon.request("POST", "/api/v1/plugins", manifest).status == 201
                yield Setup(ns, daemon, ruleset())
        finally:
            ns.ipr.link("del", index=index)


@pytest.fixture(scope="module")
def web(setup: Setup) -> dict[str, Any]:
    """VM ``web`` publishing its workload's port 8000 on host port 18080 (its manifest's expose), running."""
    body = {"name": "web", "plugin": "hello-public"}
    reply = setup.daemon.request("POST", "/api/v1/vms", body)
    assert reply.status == 201, reply.body
    vm = setup.daemon.wait_for_status("web", {"running", "crashed"}, timeout=240)
    assert vm["status"] == "running", vm
    return vm


def ruleset() -> str:
    """``nft list ruleset`` in the namespace the thread is in."""
    return subprocess.run(["nft", "list", "ruleset"], check=True, capture_output=True, text=True).stdout


def fetch(address: str = HOST_IP, port: int = HOST_PORT) -> dict[str, Any]:
    """The workload's JSON answer to ``GET /published`` through ``address:port``."""
    conn = http.client.HTTPConnection(address, port, timeout=30)
    try:
        conn.request("GET", "/published")
        answer = conn.getresponse()
        assert answer.status == 200
        return json.loads(answer.read())
    finally:
        conn.close()


def refused(address: str = HOST_IP, port: int = HOST_PORT) -> bool:
    """Whether a connection to ``address:port`` is refused (nothing published, nothing listening)."""
    try:
        socket.create_connection((address, port), timeout=30).close()
    except ConnectionRefusedError:
        return True
    return False


def test_the_published_port_reaches_the_guests_workload_and_the_api_shows_it(
    setup: Setup, web: dict[str, Any]
) -> None:
    answer = fetch()
    assert answer["message"] == "hello from a Volant microVM"
    assert answer["path"] == "/published"
    vm = setup.daemon.request("GET", "/api/v1/vms/web").json()
    assert vm["published_ports"] == [
        {
            "name": "http",
            "protocol": "tcp",
            "host_port": HOST_PORT,
            "guest_ip": web["ip_address"],
            "guest_port": 8000,
        }
    ]
    assert refused("127.0.0.1")  # loopback is not published (docs/adr/0021-port-publishing.md)
    shown = run_volar(setup.daemon.url, "vms", "get", "web")
    mapping = f"{HOST_PORT}/tcp -> {web['ip_address']}:8000"
    assert ["published_ports", mapping] in [line.split(None, 1) for line in shown.stdout.splitlines()]


def test_a_host_port_another_vm_publishes_is_refused_with_409_naming_it(
    setup: Setup, web: dict[str, Any]
) -> None:
    before = ruleset()
    body = {"name": "twin", "plugin": "hello-public"}  # the same manifest, so the same host port
    reply = setup.daemon.request("POST", "/api/v1/vms", body)
    assert reply.status == 409, reply.body
    assert f"{HOST_PORT}/tcp" in reply.json()["error"]["message"]
    assert "'web'" in reply.json()["error"]["message"]
    assert setup.daemon.request("GET", "/api/v1/vms/twin").status == 404
    twice = {"expose": [*EXPOSE, {"port": 8001, "host_port": HOST_PORT}]}
    reply = setup.daemon.request("PATCH", "/api/v1/vms/web/config", twice)
    assert reply.status == 422, reply.body
    assert reply.json()["error"]["details"][0]["field"] == "expose[1].host_port"
    assert ruleset() == before
    assert fetch()["path"] == "/published"


def test_a_host_port_with_a_listener_is_refused_with_409_naming_it(setup: Setup, web: dict[str, Any]) -> None:
    before = ruleset()
    with socket.create_server(("0.0.0.0", 18090)):
        body = {
            "name": "busy",
            "plugin": "hello-public",
            "config": {"expose": [{"port": 80, "host_port": 18090}]},
        }
        reply = setup.daemon.request("POST", "/api/v1/vms", body)
    assert reply.status == 409, reply.body
    assert "18090/tcp" in reply.json()["error"]["message"]
    assert setup.daemon.request("GET", "/api/v1/vms/busy").status == 404
    assert ruleset() == before
    assert set(setup.ns.links()) == {BRIDGE, tap_name("web")}  # the refused VM's tap is gone


def test_stop_removes_the_rules_and_start_writes_them_again(setup: Setup, web: dict[str, Any]) -> None:
    published = ruleset()
    assert setup.daemon.request("POST", "/api/v1/vms/web/stop").status == 200
    assert ruleset() == setup.empty_ruleset
    assert refused()
    assert setup.daemon.request("GET", "/api/v1/vms/web").json()["published_ports"] == []
    assert setup.daemon.request("POST", "/api/v1/vms/web/start").status == 200
    assert setup.daemon.wait_for_status("web", {"running", "crashed"}, timeout=240)["status"] == "running"
    assert ruleset() == published
    assert fetch()["path"] == "/published"


def test_a_daemon_restart_restores_a_running_vms_rules_and_drops_stale_ones(
    setup: Setup, web: dict[str, Any]
) -> None:
    published = ruleset()
    table = PortTable()
    table.unpublish(["web"])  # lost while no daemon ran
    table.publish("ghost", [PublishedPort("tcp", 18099, "192.168.127.250", 80)])  # a VM long gone
    setup.daemon.restart()
    assert ruleset() == published
    assert fetch()["path"] == "/published"
    assert refused(port=18099)


def test_a_crash_removes_the_rules(setup: Setup, web: dict[str, Any]) -> None:
    published = ruleset()
    pid = setup.daemon.request("GET", "/api/v1/vms/web").json()["pid"]
    os.kill(pid, signal.SIGKILL)  # the VMM dies under the daemon (restart policy: never)
    assert setup.daemon.wait_for_status("web", {"crashed"})["published_ports"] == []
    assert ruleset() == setup.empty_ruleset
    assert refused()
    assert setup.daemon.request("POST", "/api/v1/vms/web/start").status == 200
    assert setup.daemon.wait_for_status("web", {"running", "crashed"}, timeout=240)["status"] == "running"
    assert ruleset() == published


def test_delete_removes_the_rules(setup: Setup, web: dict[str, Any]) -> None:
    assert setup.daemon.request("DELETE", "/api/v1/vms/web").status == 204
    assert ruleset() == setup.empty_ruleset
    assert refused()
