"""The ``bridged`` network mode on two real guests in a network namespace the test makes.

One guest, ``peer-a``, runs a Python workload from the base image; the other, ``rooted-b``, runs
busybox httpd inside a root filesystem image whose ``/etc/resolv.conf`` is a link to a resolver
stub (as in many distribution images) and whose ``/etc/hostname`` says something else. Both
workloads listen on 0.0.0.0, so each is reachable over the bridge. The namespace's host side has
the bridge (made here with pyroute2, holding the gateway and both DNS addresses) and an HTTP
listener the guests call; volantd runs inside the namespace.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from volant_core.guest import GuestArtifacts
from volant_core.netdev import tap_name
from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.netns import NetworkNamespace, network_namespace

pytestmark = pytest.mark.e2e

BRIDGE = "vbe2e0"
SUBNET = ipaddress.IPv4Network("10.95.0.0/24")
HOST_IP = SUBNET[1]
#: The guests' DNS servers (the ``dns`` setting): addresses of the bridge, so a lookup is refused
#: at once instead of timing out.
DNS = (str(HOST_IP), str(SUBNET[53]))
#: An address of the host side outside the subnet: a guest reaches it only through its default route.
BEYOND = "10.250.0.1"
HOST_ANSWER = "hello from the host side\n"
#: The Python workload of ``peer-a``: who it is (host name, resolver and hosts files) and a fetcher
#: of any URL, so the test can make the guest call others.
PEER_WORKLOAD = """
import json, socket, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
class Peer(BaseHTTPRequestHandler):
    def answer(self, body, status=200):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/healthz":
            return self.answer({"status": "ok"})
        if url.path == "/whoami":
            read = lambda path: open(path).read()
            return self.answer({"hostname": socket.gethostname(), "resolv": read("/etc/resolv.conf"),
                                "hosts": read("/etc/hosts")})
        if url.path == "/fetch":
            try:
                with urllib.request.urlopen(parse_qs(url.query)["url"][0], timeout=10) as reply:
                    return self.answer({"status": reply.status, "body": reply.read().decode()})
            except OSError as exc:
                return self.answer({"error": str(exc)}, 502)
        self.answer({"error": "no such path"}, 404)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("0.0.0.0", 8000), Peer).serve_forever()
"""


def peer_manifest() -> dict[str, Any]:
    """The runtime of ``peer-a``: :data:`PEER_WORKLOAD`, with a ``whoami`` action."""
    return {
        "schema_version": "1.0",
        "name": "peer",
        "version": "1.0.0",
        "runtime": "peer",
        "resources": {"cpu_cores": 1, "memory_mb": 320},
        "workload": {
            "type": "http",
            "base_url": "http://127.0.0.1:8000",
            "entrypoint": ["/usr/bin/python3", "-c", PEER_WORKLOAD],
            "workdir": "/",
        },
        "health_check": {"endpoint": "/healthz", "timeout_ms": 60000},
        "actions": {"whoami": {"method": "GET", "path": "/whoami", "timeout_ms": 10000}},
    }


def rooted_manifest(rootfs: Path, host_url: str) -> dict[str, Any]:
    """The runtime of ``rooted-b``: inside ``rootfs``, note the host name, call ``host_url`` until
    it answers, then serve the whole root on 0.0.0.0:8000.
    """
    script = (
        "/bin/busybox hostname > /hostname.txt; "
        f"until /bin/busybox wget -q -O /host.txt {host_url}; do /bin/busybox sleep 0.2; done; "
        "exec /bin/busybox httpd -f -p 0.0.0.0:8000 -h /"
    )
    return {
        "schema_version": "1.0",
        "name": "rooted",
        "version": "1.0.0",
        "runtime": "rooted",
        "resources": {"cpu_cores": 1, "memory_mb": 256},
        "rootfs": {"url": str(rootfs)},
        "workload": {
            "type": "http",
            "base_url": "http://127.0.0.1:8000",
            "entrypoint": ["/bin/busybox", "sh", "-c", script],
            "workdir": "/",
        },
        "health_check": {"endpoint": "/host.txt", "timeout_ms": 60000},
    }


@dataclass
class HostSide:
    """An HTTP listener on every address of the host side, recording who called it."""

    server: ThreadingHTTPServer
    callers: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Its base URL on the bridge's address."""
        return self.url_at(str(HOST_IP))

    def url_at(self, address: str) -> str:
        """Its base URL on ``address``."""
        return f"http://{address}:{self.server.server_address[1]}/"


@contextlib.contextmanager
def host_listener() -> Iterator[HostSide]:
    """:class:`HostSide`, serving :data:`HOST_ANSWER` in a thread of the current namespace."""
    side: HostSide

    class Answer(BaseHTTPRequestHandler):
        """Records the caller and answers :data:`HOST_ANSWER`."""

        def do_GET(self) -> None:
            """Answer any path."""
            side.callers.append(self.client_address[0])
            data = HOST_ANSWER.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    side = HostSide(ThreadingHTTPServer(("0.0.0.0", 0), Answer))
    thread = threading.Thread(target=side.server.serve_forever, name="host-listener")
    thread.start()
    try:
        yield side
    finally:
        side.server.shutdown()
        side.server.server_close()
        thread.join()


@dataclass
class Lan:
    """The namespace, its host listener, the daemon and the two running guests' resources."""

    ns: NetworkNamespace
    host: HostSide
    api: RunningDaemon
    vms: dict[str, dict[str, Any]]

    def ip(self, name: str) -> str:
        """The address the API shows for VM ``name``."""
        return str(self.vms[name]["ip_address"])


@pytest.fixture(scope="module")
def lan(
    volant_guest: GuestArtifacts, make_rootfs: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lan]:
    """``peer-a`` and ``rooted-b`` running on one bridge of a namespace of this module's own. The
    root filesystem of ``rooted-b`` has an ``/etc/hostname`` of its own and an ``/etc/resolv.conf``
    linking to a stub that does not exist in the guest."""
    directory = tmp_path_factory.mktemp("bridged")
    rootfs = make_rootfs(
        directory,
        {"/etc/hostname": "image-default\n"},
        links={"/etc/resolv.conf": "/run/systemd/resolve/stub-resolv.conf"},
    )
    with network_namespace("volant-bridged-e2e") as ns:
        ns.ipr.link("add", ifname=BRIDGE, kind="bridge")
        (bridge,) = ns.ipr.link_lookup(ifname=BRIDGE)
        for address in DNS:
            ns.ipr.addr("add", index=bridge, address=address, prefixlen=SUBNET.prefixlen)
        ns.ipr.addr("add", index=bridge, address=BEYOND, prefixlen=32)
        ns.ipr.link("set", index=bridge, state="up")
        try:
            with (
                ns.enter(),
                host_listener() as host,
                running_daemon(
                    volant_guest,
                    network_mode="bridged",
                    subnet=SUBNET,
                    host_ip=HOST_IP,
                    artifact_dirs=(directory,),
                    plugin_settings={"VOLANT_BRIDGED_BRIDGE": BRIDGE, "VOLANT_BRIDGED_DNS": ",".join(DNS)},
                ) as api,
            ):
                for manifest in (peer_manifest(), rooted_manifest(rootfs, host.url + "from-rooted")):
                    assert api.request("POST", "/api/v1/plugins", manifest).status == 201
                for name, plugin in (("peer-a", "peer"), ("rooted-b", "rooted")):
                    reply = api.request("POST", "/api/v1/vms", {"name": name, "plugin": plugin})
                    assert reply.status == 201, reply.body
                vms = {
                    name: api.wait_for_status(name, {"running", "crashed"}) for name in ("peer-a", "rooted-b")
                }
                assert [vm["status"] for vm in vms.values()] == ["running", "running"], vms
                yield Lan(ns, host, api, vms)
        finally:
            ns.ipr.link("del", index=bridge)


def agent(lan: Lan, vm: str, path: str) -> str:
    """``GET`` through the API's agent proxy to VM ``vm``'s workload: the body."""
    reply = lan.api.request("GET", f"/api/v1/vms/{vm}/agent/v1/{path}")
    assert reply.status == 200, (reply.status, reply.body)
    return reply.body.decode()


def peer(lan: Lan, path: str) -> dict[str, Any]:
    """``peer-a``'s JSON answer to ``GET path``, through the agent proxy."""
    answer: dict[str, Any] = json.loads(agent(lan, "peer-a", path))
    return answer


def fetch_from_peer(lan: Lan, url: str) -> dict[str, Any]:
    """What ``peer-a``'s workload got when it fetched ``url``."""
    return peer(lan, f"fetch?url={quote(url, safe='')}")


def test_the_guests_get_addresses_of_the_subnet_and_taps_on_the_bridge(lan: Lan) -> None:
    addresses = {lan.ip("peer-a"), lan.ip("rooted-b")}
    assert len(addresses) == 2 and all(ipaddress.IPv4Address(ip) in SUBNET for ip in addresses)
    (bridge,) = lan.ns.ipr.link_lookup(ifname=BRIDGE)
    for name in ("peer-a", "rooted-b"):
        (tap,) = lan.ns.ipr.get_links(ifname=tap_name(name))
        assert tap.get("IFLA_MASTER") == bridge


def test_a_guest_fetches_the_other_guests_workload_over_the_bridge(lan: Lan) -> None:
    answer = fetch_from_peer(lan, f"http://{lan.ip('rooted-b')}:8000/hostname.txt")
    assert answer == {"status": 200, "body": "rooted-b\n"}


def test_both_guests_reach_the_host(lan: Lan) -> None:
    assert fetch_from_peer(lan, lan.host.url) == {"status": 200, "body": HOST_ANSWER}
    assert agent(lan, "rooted-b", "host.txt") == HOST_ANSWER  # fetched by its workload at boot
    assert {lan.ip("peer-a"), lan.ip("rooted-b")} <= set(lan.host.callers)


def test_a_guest_reaches_beyond_its_subnet_through_the_gateway(lan: Lan) -> None:
    assert fetch_from_peer(lan, lan.host.url_at(BEYOND)) == {"status": 200, "body": HOST_ANSWER}


def test_the_agent_proxy_answers_for_both(lan: Lan) -> None:
    reply = lan.api.request("POST", "/api/v1/vms/peer-a/actions/whoami")
    assert reply.status == 200, reply.body
    assert reply.json()["hostname"] == "peer-a"
    assert agent(lan, "rooted-b", "hostname.txt") == "rooted-b\n"


def test_resolver_and_host_name_are_the_launch_parameters_in_both_roots(lan: Lan) -> None:
    resolv = "".join(f"nameserver {server}\n" for server in DNS)
    whoami = peer(lan, "whoami")
    assert whoami["hostname"] == "peer-a" and whoami["resolv"] == resolv
    assert f"{lan.ip('peer-a')}\tpeer-a\n" in whoami["hosts"]
    assert agent(lan, "rooted-b", "etc/resolv.conf") == resolv  # the image's link was replaced
    assert agent(lan, "rooted-b", "etc/hostname") == "rooted-b\n"
    assert f"{lan.ip('rooted-b')}\trooted-b\n" in agent(lan, "rooted-b", "etc/hosts")


def test_a_vm_is_found_by_its_address(lan: Lan) -> None:
    reply = lan.api.request("GET", f"/api/v1/vms?q={lan.ip('rooted-b')}")
    assert [vm["name"] for vm in reply.json()] == ["rooted-b"]


@pytest.mark.parametrize(
    "option", [{"subnet": "10.96.0.0/24"}, {"gateway": "10.95.0.254"}, {"auto_assign": False}]
)
def test_per_vm_network_options_are_refused(lan: Lan, option: dict[str, Any]) -> None:
    (key,) = option
    body = {"name": "odd", "plugin": "peer", "config": {"network": {"mode": "bridged", **option}}}
    reply = lan.api.request("POST", "/api/v1/vms", body)
    assert reply.status == 422, reply.body
    assert reply.json()["error"]["details"][0]["field"].endswith(f"network.{key}")
    assert lan.api.request("GET", "/api/v1/vms/odd").status == 404
    assert tap_name("odd") not in lan.ns.links()


@pytest.mark.parametrize(
    "argument", ["volant.dns=1.1.1.1", "volant.hostname=other", "volant.ip=10.95.0.9/24"]
)
def test_a_users_kernel_arguments_may_not_override_the_modes(lan: Lan, argument: str) -> None:
    body = {"name": "odd", "plugin": "peer", "kernel_cmdline": f"volant.console=off {argument}"}
    reply = lan.api.request("POST", "/api/v1/vms", body)
    assert reply.status == 422, reply.body
    assert reply.json()["error"]["details"][0]["field"] == "kernel_cmdline"
    assert lan.api.request("GET", "/api/v1/vms/odd").status == 404
    assert len(lan.api.daemon.store.ips.leased()) == 2


def test_delete_removes_the_taps_and_the_leases(lan: Lan) -> None:
    """Last in the module: it deletes the guests the others use."""
    for name in ("peer-a", "rooted-b"):
        assert lan.api.request("DELETE", f"/api/v1/vms/{name}").status in (200, 202, 204)
    assert lan.ns.links() == [BRIDGE]
    assert lan.api.daemon.store.ips.leased() == []
    assert lan.api.request("GET", "/api/v1/vms").json() == []
