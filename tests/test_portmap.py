"""Port publishing's nftables rules (volant_core.portmap), applied with the real ``nft`` inside a
network namespace of the test's own, without a guest: a second address on the test's bridge plays
the guest, and real TCP/UDP traffic to the host's published port must reach it.
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from volant_core.errors import ConflictError
from volant_core.manifest import Manifest
from volant_core.orchestrator.publishing import PortPublisher, published_ports
from volant_core.orchestrator.vmconfig import VMConfig, apply_patch, parse_patch, validate_config
from volant_core.portmap import PortMapError, PortTable, PublishedPort, listening
from volant_core.testing.netns import NetworkNamespace, network_namespace
from volant_core.vm import VMStatus, VMView

HOST_IP = "10.77.0.1"
GUEST_IP = "10.77.0.2"  # stands in for a guest: an address of the namespace, on the bridge
GUEST_PORT = 9000


@dataclass
class Bench:
    """A namespace (entered by the test's thread) with the stand-in guest's HTTP server."""

    ns: NetworkNamespace
    table: PortTable


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"from the guest"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def bench() -> Iterator[Bench]:
    """The namespace (bridge ``pmbr0`` with the host's and the stand-in guest's addresses), entered,
    with an HTTP server on ``GUEST_IP:GUEST_PORT`` served from a thread outside it.
    """
    with network_namespace() as ns:
        ns.ipr.link("add", ifname="pmbr0", kind="bridge")
        (index,) = ns.ipr.link_lookup(ifname="pmbr0")
        for address in (HOST_IP, GUEST_IP):
            ns.ipr.addr("add", index=index, address=address, prefixlen=24)
        ns.ipr.link("set", index=index, state="up")
        with ns.enter():
            server = http.server.HTTPServer((GUEST_IP, GUEST_PORT), _Hello)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with ns.enter():
                yield Bench(ns, PortTable())
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
            ns.ipr.link("del", index=index)


def ruleset() -> str:
    """``nft list ruleset`` of the namespace the thread is in."""
    return subprocess.run(["nft", "list", "ruleset"], check=True, capture_output=True, text=True).stdout


def fetch(address: str, port: int) -> bytes:
    """The body of ``GET /`` at ``address:port`` (ConnectionRefusedError when nobody answers)."""
    with socket.create_connection((address, port), timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    return answer.split(b"\r\n\r\n", 1)[1]


def tcp(host_port: int) -> PublishedPort:
    """The stand-in guest's HTTP port published on ``host_port``."""
    return PublishedPort("tcp", host_port, GUEST_IP, GUEST_PORT)


def view(name: str) -> VMView:
    """A running bridged VM ``name`` at the stand-in guest's address."""
    return VMView(
        name=name,
        status=VMStatus.RUNNING,
        runtime="hello",
        plugin="hello",
        hypervisor="qemu",
        network_mode="bridged",
        cpu_cores=1,
        memory_mb=256,
        mac_address="02:00:00:00:00:01",
        vsock_cid=3,
        runtime_dir=Path("/nonexistent"),
        ip_address=GUEST_IP,
    )


def test_a_published_port_reaches_the_guest_and_unpublishing_leaves_no_trace(bench: Bench) -> None:
    before = ruleset()
    with pytest.raises(ConnectionRefusedError):
        fetch(HOST_IP, 18080)
    bench.table.publish("web", [tcp(18080)])
    assert fetch(HOST_IP, 18080) == b"from the guest"
    assert bench.table.published() == {"web": [tcp(18080)]}
    bench.table.unpublish(["web"])
    with pytest.raises(ConnectionRefusedError):
        fetch(HOST_IP, 18080)
    assert ruleset() == before


def test_loopback_is_not_published_and_refused_at_once(bench: Bench) -> None:
    bench.table.publish("web", [tcp(18080)])
    with pytest.raises(ConnectionRefusedError):
        fetch("127.0.0.1", 18080)


def test_udp_ports_are_published(bench: Bench) -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as guest,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
    ):
        guest.bind((GUEST_IP, 9001))
        guest.settimeout(10)
        client.settimeout(10)
        bench.table.publish("dns", [PublishedPort("udp", 15353, GUEST_IP, 9001)])
        client.sendto(b"ping", (HOST_IP, 15353))
        data, sender = guest.recvfrom(100)
        guest.sendto(b"pong:" + data, sender)
        assert client.recvfrom(100) == (b"pong:ping", (HOST_IP, 15353))
    bench.table.unpublish(["dns"])


def test_publishing_again_replaces_the_ports_and_leaves_other_vms_alone(bench: Bench) -> None:
    bench.table.publish("web", [tcp(18080), tcp(18081)])
    bench.table.publish("api", [tcp(18090)])
    bench.table.publish("web", [tcp(18082)])
    assert bench.table.published() == {"web": [tcp(18082)], "api": [tcp(18090)]}
    with pytest.raises(ConnectionRefusedError):
        fetch(HOST_IP, 18080)
    assert fetch(HOST_IP, 18082) == fetch(HOST_IP, 18090) == b"from the guest"
    bench.table.publish("web", [])
    assert bench.table.published() == {"api": [tcp(18090)]}
    bench.table.unpublish(["api", "never-published"])
    assert bench.table.published() == {}


def test_a_refused_publish_writes_nothing(bench: Bench) -> None:
    bench.table.publish("web", [tcp(18080)])
    before = ruleset()
    bad = PublishedPort("tcp", 18081, "10.77.0.300", GUEST_PORT)  # nft refuses the address
    with pytest.raises(PortMapError, match="nft"):
        bench.table.publish("web", [tcp(18085), bad])
    assert ruleset() == before
    assert fetch(HOST_IP, 18080) == b"from the guest"


def test_a_host_port_held_by_another_vm_or_a_listener_is_refused_naming_it(
    bench: Bench, hello_manifest: dict[str, Any]
) -> None:
    publisher = PortPublisher(bench.table)
    config = _config(hello_manifest, [{"port": GUEST_PORT, "host_port": 18080}])
    publisher.publish(view("web"), config)
    before = ruleset()
    with pytest.raises(ConflictError, match="18080/tcp is published by vm 'web'"):
        publisher.publish(view("other"), config)
    with socket.create_server((HOST_IP, 18070)):
        assert listening("tcp", 18070)
        with pytest.raises(ConflictError, match="18070/tcp is in use on the host"):
            publisher.publish(
                view("other"), _config(hello_manifest, [{"port": GUEST_PORT, "host_port": 18070}])
            )
    assert ruleset() == before
    publisher.publish(view("web"), config)  # its own rules are no conflict


def test_reconcile_restores_running_vms_and_drops_stale_ones(
    bench: Bench, hello_manifest: dict[str, Any]
) -> None:
    publisher = PortPublisher(bench.table)
    config = _config(hello_manifest, [{"port": GUEST_PORT, "host_port": 18080, "name": "http"}])
    bench.table.publish("gone", [tcp(18099)])
    publisher.reconcile([(view("web"), config)])
    assert bench.table.published() == {"web": [tcp(18080)]}
    assert fetch(HOST_IP, 18080) == b"from the guest"
    with pytest.raises(ConnectionRefusedError):
        fetch(HOST_IP, 18099)
    publisher.reconcile([])
    assert "volant" not in ruleset()


def test_expose_entries_of_another_network_mode_are_not_published(
    bench: Bench, hello_manifest: dict[str, Any]
) -> None:
    config = _config(hello_manifest, [{"port": GUEST_PORT, "host_port": 18080, "mode": "dhcp"}])
    PortPublisher(bench.table).publish(view("web"), config)
    assert bench.table.published() == {}


def _config(manifest: dict[str, Any], expose: list[dict[str, Any]]) -> VMConfig:
    """A configuration of ``manifest`` with ``expose``."""
    base = VMConfig.from_manifest("hello-http", Manifest.model_validate(manifest)).to_json()
    return validate_config({**base, "expose": expose})


def test_a_new_vm_publishes_its_manifests_ports_until_its_own_expose_replaces_them(
    hello_manifest: dict[str, Any],
) -> None:
    manifest = Manifest.model_validate({**hello_manifest, "expose": [{"port": 8000, "host_port": 18080}]})
    config = VMConfig.from_manifest("hello-http", manifest)
    published = (PublishedPort("tcp", 18080, GUEST_IP, 8000),)
    assert published_ports(config, "bridged", GUEST_IP) == published
    own = apply_patch(config, parse_patch({"expose": [{"port": 53, "protocol": "udp"}]}))
    assert published_ports(own, "bridged", GUEST_IP) == (PublishedPort("udp", 53, GUEST_IP, 53),)
    assert published_ports(apply_patch(own, parse_patch({"expose": None})), "bridged", GUEST_IP) == published
    assert published_ports(apply_patch(own, parse_patch({"expose": []})), "bridged", GUEST_IP) == ()
