"""The ``dhcp`` network mode on real guests: volantd (a real process, killed with -9 and started
again) inside a network namespace of the test's own, with the bridge the test made there.

The module boots three guests in all: ``a`` and ``b`` together (``b`` publishes its workload on the
host), ``c`` after the restart.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from volant_core.guest import GuestArtifacts
from volant_core.sdk import tap_name
from volant_core.testing.daemon import RunningProcess, volantd_process, wait_for_vm_status
from volant_core.testing.netns import NetworkNamespace, network_namespace
from volant_core.testing.pytest_plugin import require_qemu
from volant_core.testing.waiting import free_port

pytestmark = pytest.mark.e2e

BRIDGE = "vbr0"
SUBNET = ipaddress.IPv4Network("10.88.0.0/24")
HOST_IP = ipaddress.IPv4Address("10.88.0.1")
#: Host port guest ``b`` publishes its workload on.
PUBLISHED_PORT = 18081

#: A workload that reports the guest's IPv4 addresses on eth0 and its routes, as the guest sees them.
NET_REPORTER = """
import json, subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
def ip(*args):
    return subprocess.run(["/usr/bin/busybox", "ip", *args], capture_output=True, text=True).stdout
class Report(BaseHTTPRequestHandler):
    def do_GET(self):
        body = {"ok": True} if self.path == "/healthz" else {
            "addresses": ip("-4", "-o", "addr", "show", "dev", "eth0"), "routes": ip("route")}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("0.0.0.0", 8000), Report).serve_forever()
"""

MANIFEST: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "net-report",
    "version": "0.1.0",
    "runtime": "net-report",
    "resources": {"cpu_cores": 1, "memory_mb": 384},
    "workload": {
        "type": "http",
        "base_url": "http://127.0.0.1:8000",
        "entrypoint": ["/usr/bin/python3", "-c", NET_REPORTER],
        "workdir": "/",
    },
    "health_check": {"endpoint": "/healthz", "timeout_ms": 60000},
}


@dataclass
class DhcpHost:
    """The test's namespace with its bridge, and the volantd process serving in it."""

    ns: NetworkNamespace
    state_dir: Path
    env: dict[str, str]
    port: int
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    daemon: RunningProcess | None = None

    def start(self) -> RunningProcess:
        """Start volantd (the thread is inside the namespace, so volantd and its children are too)."""
        self.daemon = self.stack.enter_context(volantd_process(self.state_dir, self.port, env=self.env))
        return self.daemon

    def kill(self) -> None:
        """``kill -9`` volantd: the guests and dnsmasq stay behind."""
        assert self.daemon is not None
        self.daemon.process.send_signal(signal.SIGKILL)
        self.daemon.process.wait(30)

    def api(self) -> Any:
        """A client of the running volantd."""
        assert self.daemon is not None
        return self.daemon.client(timeout=120)

    def dnsmasq_pids(self) -> list[int]:
        """The dnsmasq processes in the namespace."""
        return [pid for pid, argv in self.ns.processes().items() if Path(argv.split()[0]).name == "dnsmasq"]

    def guest_network(self, name: str) -> tuple[list[str], str]:
        """``(addresses, routes)`` of ``name``'s eth0, as its workload reads them inside the guest."""
        reply = self.api().send("GET", f"/api/v1/vms/{name}/agent/v1/net")
        assert reply.status == 200, reply.body
        report = json.loads(reply.body)
        return re.findall(r"inet (\S+)", report["addresses"]), report["routes"]


@pytest.fixture(scope="module")
def host(volant_guest: GuestArtifacts) -> Iterator[DhcpHost]:
    """A namespace with bridge vbr0 (10.88.0.1/24) and volantd in network mode ``dhcp`` on it. At the
    end every VM is deleted and the namespace is checked for leaks (processes, taps).
    """
    require_qemu()
    state_dir = Path(tempfile.mkdtemp(prefix="vdh-"))
    env = {
        **os.environ,
        "VOLANT_KERNEL": str(volant_guest.kernel),
        "VOLANT_INITRAMFS": str(volant_guest.initramfs),
        "VOLANT_NETWORK_MODE": "dhcp",
        "VOLANT_SUBNET": str(SUBNET),
        "VOLANT_HOST_IP": str(HOST_IP),
        "VOLANT_DHCP_BRIDGE": BRIDGE,
    }
    try:
        with network_namespace() as ns:
            ns.ipr.link("add", ifname=BRIDGE, kind="bridge")
            (bridge,) = ns.ipr.link_lookup(ifname=BRIDGE)
            ns.ipr.addr("add", index=bridge, address=str(HOST_IP), prefixlen=SUBNET.prefixlen)
            ns.ipr.link("set", index=bridge, state="up")
            with ns.enter():
                dhcp_host = DhcpHost(ns, state_dir, env, free_port())
                with dhcp_host.stack:
                    dhcp_host.start()
                    assert dhcp_host.api().send("POST", "/api/v1/plugins", MANIFEST).status == 201
                    try:
                        yield dhcp_host
                    finally:
                        if dhcp_host.daemon is not None and dhcp_host.daemon.process.poll() is None:
                            for vm in dhcp_host.api().json("GET", "/api/v1/vms"):
                                dhcp_host.api().send("DELETE", f"/api/v1/vms/{vm['name']}")
            ns.ipr.link("del", index=bridge)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def first_two(host: DhcpHost) -> dict[str, dict[str, Any]]:
    """Guests ``a`` and ``b``, booted together; their API resources once running."""
    configs = {"a": {}, "b": {"expose": [{"port": 8000, "host_port": PUBLISHED_PORT}]}}
    for name, config in configs.items():
        body = {"name": name, "plugin": "net-report", "config": config}
        assert host.api().send("POST", "/api/v1/vms", body).status == 201
    return {name: wait_for_vm_status(host.api(), name, {"running"}, timeout=180) for name in ("a", "b")}


def assert_guest_has(host: DhcpHost, vm: dict[str, Any]) -> None:
    """The guest's eth0 has exactly the address the API shows, and its default route is the host."""
    addresses, routes = host.guest_network(vm["name"])
    assert addresses == [f"{vm['ip_address']}/{SUBNET.prefixlen}"], (addresses, vm)
    assert f"default via {HOST_IP} dev eth0" in routes, routes
    assert host.ns.popen(["busybox", "ping", "-c", "1", "-W", "5", vm["ip_address"]]).wait(30) == 0


def test_a_guest_gets_the_address_the_api_shows_from_dnsmasq(
    host: DhcpHost, first_two: dict[str, dict[str, Any]]
) -> None:
    vm = first_two["a"]
    assert ipaddress.IPv4Address(vm["ip_address"]) in SUBNET
    assert_guest_has(host, vm)
    # It was dnsmasq that answered: its log names the DHCPACK of this guest's MAC and address.
    log = (host.state_dir / "plugins" / "dhcp" / BRIDGE / "dnsmasq.log").read_text()
    assert f"DHCPACK({BRIDGE}) {vm['ip_address']} {vm['mac_address']}" in log


def test_a_second_guest_gets_another_address(host: DhcpHost, first_two: dict[str, dict[str, Any]]) -> None:
    assert first_two["b"]["ip_address"] != first_two["a"]["ip_address"]
    assert_guest_has(host, first_two["b"])
    assert len(host.dnsmasq_pids()) == 1


def test_a_dhcp_guest_publishes_ports_on_the_host(
    host: DhcpHost, first_two: dict[str, dict[str, Any]]
) -> None:
    url = f"http://{HOST_IP}:{PUBLISHED_PORT}/net"
    with urllib.request.urlopen(url, timeout=30) as answer:  # from the namespace's host side
        addresses = re.findall(r"inet (\S+)", json.load(answer)["addresses"])
    assert addresses == [f"{first_two['b']['ip_address']}/{SUBNET.prefixlen}"]  # b's workload answered


def test_after_kill_9_of_volantd_dnsmasq_is_adopted_and_a_third_guest_gets_an_address(
    host: DhcpHost, first_two: dict[str, dict[str, Any]]
) -> None:
    (before,) = host.dnsmasq_pids()
    host.kill()
    host.start()
    api = host.api()
    for name in ("a", "b"):
        assert (
            wait_for_vm_status(api, name, {"running"}, timeout=30)["ip_address"]
            == first_two[name]["ip_address"]
        )
    assert host.dnsmasq_pids() == [before]

    assert api.send("POST", "/api/v1/vms", {"name": "c", "plugin": "net-report"}).status == 201
    third = wait_for_vm_status(api, "c", {"running"}, timeout=180)
    assert third["ip_address"] not in {vm["ip_address"] for vm in first_two.values()}
    assert_guest_has(host, third)
    assert len(host.dnsmasq_pids()) == 1  # restarted with c's lease: still exactly one


def test_delete_removes_the_taps_the_host_entries_and_at_last_dnsmasq(
    host: DhcpHost, first_two: dict[str, dict[str, Any]]
) -> None:
    server_dir = host.state_dir / "plugins" / "dhcp" / BRIDGE
    first, *others = host.api().json("GET", "/api/v1/vms")
    assert others, "the module's earlier tests leave at least two guests"
    assert host.api().send("DELETE", f"/api/v1/vms/{first['name']}").status == 204
    assert tap_name(first["name"]) not in host.ns.links()
    assert all(tap_name(vm["name"]) in host.ns.links() for vm in others)
    assert sorted(json.loads((server_dir / "hosts.json").read_text())) == sorted(vm["name"] for vm in others)
    served_by_dnsmasq = (server_dir / "dnsmasq.conf").read_text()
    assert first["mac_address"] not in served_by_dnsmasq
    assert all(vm["mac_address"] in served_by_dnsmasq for vm in others)
    for vm in others:
        assert host.api().send("DELETE", f"/api/v1/vms/{vm['name']}").status == 204
    assert host.ns.links() == [BRIDGE]
    assert host.dnsmasq_pids() == []
    assert not server_dir.exists()
