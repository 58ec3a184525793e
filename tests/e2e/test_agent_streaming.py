"""The agent proxy streams both ways through a real guest, and sends the path as the client encoded it.

The guest's workload is ``tests/guest/workload_app.py``: ``/stream/<gate>`` writes a first line and
waits for ``/release/<gate>`` (another request) before writing the rest; ``/sha256`` hashes the body
it is sent; every other path is echoed as it reached the workload.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
import threading
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from volant_core.agent_client import HEALTH_PATH, AgentClient, AgentResponse
from volant_core.guest import GuestArtifacts
from volant_core.orchestrator.health import PROBE_TIMEOUT_S
from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.pytest_plugin import require_qemu
from volant_core.testing.waiting import eventually

pytestmark = pytest.mark.e2e

WORKLOAD_APP = Path(__file__).parents[1] / "guest" / "workload_app.py"
VM = "streams"
AGENT = f"/api/v1/vms/{VM}/agent/v1"
#: Seconds between two health probes of the supervisor (short: many probes while a stream is open).
HEALTH_INTERVAL = 0.25
#: Longest wait for anything the guest does (a safety net against hangs, not a measurement).
GUEST_WAIT = 120.0


def streams_manifest() -> dict[str, Any]:
    """A runtime whose workload is the test workload, run from source by the guest's Python."""
    return {
        "schema_version": "1.0",
        "name": VM,
        "version": "0.1.0",
        "runtime": VM,
        "resources": {"cpu_cores": 1, "memory_mb": 384},
        "workload": {
            "type": "http",
            "base_url": "http://127.0.0.1:8000",
            # workload_app.py PORT READY_FILE: "/" exists, so it is healthy at once.
            "entrypoint": ["/usr/bin/python3", "-c", WORKLOAD_APP.read_text(), "8000", "/"],
            "workdir": "/",
        },
        "health_check": {"endpoint": "/healthz", "timeout_ms": 60000},
    }


@pytest.fixture(scope="module")
def api(volant_guest: GuestArtifacts) -> Iterator[RunningDaemon]:
    """A daemon probing its VMs' health every 0.25 s, with the running guest ``streams``."""
    require_qemu()
    with running_daemon(volant_guest, health_interval=HEALTH_INTERVAL) as daemon:
        assert daemon.request("POST", "/api/v1/plugins", streams_manifest()).status == 201
        assert daemon.request("POST", "/api/v1/vms", {"name": VM, "plugin": VM}).status == 201
        assert daemon.wait_for_status(VM, {"running", "crashed"})["status"] == "running"
        yield daemon


def connect(api: RunningDaemon) -> http.client.HTTPConnection:
    """A plain HTTP connection to the daemon (the request target goes out exactly as written)."""
    url = urllib.parse.urlsplit(api.url)
    return http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=GUEST_WAIT)


@dataclass
class HeldStream:
    """An answer of ``GET /stream/<gate>`` through the proxy, its first line read."""

    response: http.client.HTTPResponse
    gate: str


@pytest.fixture
def held_stream(api: RunningDaemon) -> Iterator[HeldStream]:
    """``GET /stream/<gate>`` through the proxy, its first line read: the workload now waits for
    ``POST /release/<gate>``, so the answer stays open (released at teardown in any case).
    """
    gate = f"gate-{os.urandom(4).hex()}"
    connection = connect(api)
    connection.request("GET", f"{AGENT}/stream/{gate}")
    response = connection.getresponse()
    try:
        assert response.status == 200
        assert response.readline() == b"first\n"
        yield HeldStream(response, gate)
    finally:
        api.request("POST", f"{AGENT}/release/{gate}")
        connection.close()


class HealthProbes:
    """The supervisor's health probes of the VM, each recorded with its outcome as it completes."""

    def __init__(self, client: AgentClient) -> None:
        self._client = client
        self._request = client.request
        self.outcomes: list[str] = []
        self._changed = threading.Condition()

    def __enter__(self) -> HealthProbes:
        self._client.request = self._record  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self._client.request

    def _record(self, method: str, path: str, **options: Any) -> AgentResponse:
        outcome = "no answer"
        try:
            answer = self._request(method, path, **options)
            outcome = str(answer.status)
            return answer
        except Exception as exc:
            outcome = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if path == HEALTH_PATH:
                with self._changed:
                    self.outcomes.append(outcome)
                    self._changed.notify_all()

    def wait_for(self, count: int) -> list[str]:
        """The outcomes of the next ``count`` probes (or up to the first failure)."""
        with self._changed:
            start = len(self.outcomes)
            done = self._changed.wait_for(
                lambda: len(self.outcomes) - start >= count or any(o != "200" for o in self.outcomes[start:]),
                GUEST_WAIT,
            )
            assert done, f"the supervisor stopped probing: {self.outcomes[start:]}"
            return self.outcomes[start : start + count]


def test_streamed_answer_arrives_while_another_request_gets_through(
    api: RunningDaemon, held_stream: HeldStream
) -> None:
    # The first line came through the API while the workload is still writing its answer.
    release = api.request("POST", f"{AGENT}/release/{held_stream.gate}")  # while the stream is open
    assert (release.status, release.json()) == (200, {"released": held_stream.gate})
    assert held_stream.response.read() == b"rest\n"


def test_large_upload_reaches_the_workload_whole(api: RunningDaemon) -> None:
    data = os.urandom(8 * 1024 * 1024)  # twice the API's limit for other bodies
    answer = api.request("POST", f"{AGENT}/sha256", raw=data, timeout=GUEST_WAIT)
    assert answer.status == 200, answer.body[:500]
    assert answer.json() == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def test_chunked_upload_needs_a_content_length(api: RunningDaemon) -> None:
    connection = connect(api)
    connection.putrequest("POST", f"{AGENT}/sha256")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()  # the answer comes before the body would be read
    answer = connection.getresponse()
    assert answer.status == 411
    assert "Content-Length" in json.loads(answer.read())["error"]["message"]
    connection.close()


def test_encoded_slash_reaches_the_workload_encoded(api: RunningDaemon) -> None:
    connection = connect(api)
    connection.request("GET", f"{AGENT}/files/a%2Fb?name=x%2Fy&n=1")
    answer = connection.getresponse()
    assert answer.status == 200
    echo = json.loads(answer.read())
    assert (echo["path"], echo["query"]) == ("/files/a%2Fb", "name=x%2Fy&n=1")
    connection.close()


def test_vm_stays_running_while_a_stream_is_held_open(api: RunningDaemon, held_stream: HeldStream) -> None:
    # Enough probes, one every HEALTH_INTERVAL, that the stream stays open for longer than a probe
    # may wait: a probe queued behind the stream would time out and count as a failure.
    needed = math.ceil(PROBE_TIMEOUT_S / HEALTH_INTERVAL) + 2
    with HealthProbes(api.daemon.orchestrator.agent(VM)) as probes:
        assert probes.wait_for(needed) == ["200"] * needed
    assert api.request("GET", f"/api/v1/vms/{VM}").json()["status"] == "running"
    assert api.request("POST", f"{AGENT}/release/{held_stream.gate}").status == 200
    assert held_stream.response.read() == b"rest\n"


def test_clients_hanging_up_give_their_lanes_back_at_once(api: RunningDaemon) -> None:
    # As many held streams as ordinary requests have lanes (every lane but the health probes' one).
    # A relayed stream has no idle limit: unless volantd and kestrel notice the hang-ups, the streams
    # hold their lanes until the workload writes again, and the requests below time out.
    ordinary_lanes = api.daemon.orchestrator.agent(VM).channel.lanes - 1
    gates = [f"hangup-{os.urandom(4).hex()}" for _ in range(ordinary_lanes)]
    try:
        for gate in gates:
            connection = connect(api)
            connection.request("GET", f"{AGENT}/stream/{gate}")
            response = connection.getresponse()
            assert (response.status, response.readline()) == (200, b"first\n")
            response.close()  # hangs up while the workload still holds the rest back
            connection.close()
        with ThreadPoolExecutor(max_workers=ordinary_lanes) as pool:  # one request on every lane
            answers = list(pool.map(lambda _: api.request("GET", f"{AGENT}/manifest"), gates))
        assert [answer.status for answer in answers] == [200] * ordinary_lanes
        for gate in gates:  # kestrel let go of the workload's streams too
            eventually(
                lambda gate=gate: api.request("GET", f"{AGENT}/hung-up/{gate}").json()["hung_up"],
                f"the workload's stream {gate} closed by kestrel",
            )
    finally:
        for gate in gates:
            api.request("POST", f"{AGENT}/release/{gate}")
