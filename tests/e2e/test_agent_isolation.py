"""Agents are not open to other guests: two booted guests on one bridge (in a network namespace of
the test's own, volantd inside in network mode ``bridged``), and guest A's workload cannot get a 2xx
from guest B's kestrel on TCP 8080, whatever it asks for; B keeps running, and the host still
reaches B's agent.
"""

from __future__ import annotations

import copy
import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from volant_core.agent.constants import AGENT_PORT, AGENT_TOKEN_HEADER
from volant_core.guest import GuestArtifacts
from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.netns import NetworkNamespace, network_namespace
from volant_core.testing.pytest_plugin import require_qemu

pytestmark = pytest.mark.e2e

BRIDGE = "vbr0"
HOST_IP = "192.168.127.1"

#: Guest A's workload: ``GET /probe?host=&method=&path=[&token=]`` sends that request to kestrel's TCP
#: port on ``host`` from inside the guest and answers ``{"status": N}`` (or ``{"error": ...}``).
PROBER = """
import http.client, json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
class Probe(BaseHTTPRequestHandler):
    def answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        if self.path == "/healthz":
            return self.answer({"status": "ok"})
        q = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        headers = {"@HEADER@": q["token"]} if "token" in q else {}
        conn = http.client.HTTPConnection(q["host"], @PORT@, timeout=20)
        try:
            body = b"{}" if q["method"] == "POST" else None
            conn.request(q["method"], q["path"], body=body, headers=headers)
            self.answer({"status": conn.getresponse().status})
        except OSError as exc:
            self.answer({"error": repr(exc)})
        finally:
            conn.close()
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", 8000), Probe).serve_forever()
""".replace("@HEADER@", AGENT_TOKEN_HEADER).replace("@PORT@", str(AGENT_PORT))


def prober_manifest(hello: dict[str, Any]) -> dict[str, Any]:
    """hello-http with the prober as its workload."""
    manifest = copy.deepcopy(hello)
    manifest["name"] = manifest["runtime"] = "prober"
    manifest["workload"]["entrypoint"] = ["/usr/bin/python3", "-c", PROBER]
    del manifest["actions"], manifest["openapi"]
    return manifest


@pytest.fixture(scope="module")
def guests(
    volant_guest: GuestArtifacts, hello_manifest_module: dict[str, Any]
) -> Iterator[tuple[NetworkNamespace, RunningDaemon]]:
    """A namespace with the bridge, volantd inside in ``bridged`` mode, guest ``a`` (the prober)
    and guest ``b`` (hello-http) running.
    """
    require_qemu()
    with network_namespace() as ns:
        ns.ipr.link("add", ifname=BRIDGE, kind="bridge")
        (index,) = ns.ipr.link_lookup(ifname=BRIDGE)
        try:
            ns.ipr.addr("add", index=index, address=HOST_IP, prefixlen=24)
            ns.ipr.link("set", index=index, state="up")
            with ns.enter(), running_daemon(volant_guest, network_mode="bridged") as daemon:
                for manifest in (hello_manifest_module, prober_manifest(hello_manifest_module)):
                    assert daemon.request("POST", "/api/v1/plugins", manifest).status == 201
                for name, runtime in (("a", "prober"), ("b", "hello-http")):
                    assert (
                        daemon.request("POST", "/api/v1/vms", {"name": name, "plugin": runtime}).status == 201
                    )
                for name in ("a", "b"):
                    assert daemon.wait_for_status(name, {"running", "crashed"})["status"] == "running"
                yield ns, daemon
        finally:
            ns.ipr.link("del", index=index)


def probe_from_a(daemon: RunningDaemon, host: str, method: str, path: str, token: str | None = None) -> Any:
    """What guest A's workload got from kestrel at ``host``, read through the API's agent proxy."""
    query = {"host": host, "method": method, "path": path, **({"token": token} if token else {})}
    answer = daemon.request("GET", f"/api/v1/vms/a/agent/v1/probe?{urlencode(query)}")
    assert answer.status == 200, answer.body
    return answer.json()


#: What a guest might try on another's agent: power it off, reach its workload, read its state.
ATTEMPTS = [
    ("POST", "/v1/shutdown"),
    ("GET", "/v1/"),
    ("POST", "/v1/echo"),
    ("GET", "/v1/health"),
    ("GET", "/v1/logs"),
    ("GET", "/v1/manifest"),
]


def test_a_guest_gets_no_2xx_from_another_guests_agent(
    guests: tuple[NetworkNamespace, RunningDaemon],
) -> None:
    _ns, daemon = guests
    b_address = daemon.request("GET", "/api/v1/vms/b").json()["ip_address"]
    for method, path in ATTEMPTS:
        assert probe_from_a(daemon, b_address, method, path) == {"status": 401}, (method, path)
    # A guest knows its own token at best: kestrel's token is per VM, so a guessed or borrowed one is no key.
    for token in ("0" * 64, "a-guess"):
        assert probe_from_a(daemon, b_address, "POST", "/v1/shutdown", token) == {"status": 403}

    b = daemon.request("GET", "/api/v1/vms/b").json()
    assert b["status"] == "running"
    hello = daemon.request("GET", "/api/v1/vms/b/agent/v1/")  # the host still drives B's agent
    assert hello.status == 200 and hello.json()["path"] == "/"
    assert daemon.request("GET", "/api/v1/vms/b/agent/v1/health").status == 200


def test_the_host_side_of_the_bridge_gets_no_2xx_without_the_token(
    guests: tuple[NetworkNamespace, RunningDaemon],
) -> None:
    """Not only guests: anything on the bridge (the namespace's own address too) is asked for the token."""
    _ns, daemon = guests
    b_address = daemon.request("GET", "/api/v1/vms/b").json()["ip_address"]
    conn = http.client.HTTPConnection(b_address, AGENT_PORT, timeout=30)
    try:
        conn.request("POST", "/v1/shutdown", body=b"{}")
        answer = conn.getresponse()
        assert answer.status == 401
        assert AGENT_TOKEN_HEADER in json.loads(answer.read())["error"]["message"]
    finally:
        conn.close()
    assert daemon.request("GET", "/api/v1/vms/b").json()["status"] == "running"
