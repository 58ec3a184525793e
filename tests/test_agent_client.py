"""AgentClient against a real kestrel running in host mode on a UNIX socket."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from volant_core.agent_client import LANE_WAIT_SETTING, AgentClient, AgentResponse
from volant_core.channels import SerialLaneChannel, UnixSocketChannel
from volant_core.errors import AgentError, AgentTimeout, BusyError
from volant_core.manifest import manifest_json, parse_manifest
from volant_core.testing.kestrel import KestrelHost, http_server_workload, script_workload
from volant_core.testing.processes import IDLE_PROGRAM
from volant_core.testing.waiting import eventually, free_port

START_TIMEOUT = 30.0
#: The test workload with the streaming endpoints (``/stream/<gate>``, ``/release/<gate>``, ``/sha256``).
WORKLOAD_APP = Path(__file__).parent / "guest" / "workload_app.py"


class CountingChannel(UnixSocketChannel):
    """The core's UNIX socket channel, counting the connections it opened."""

    def __init__(self, path: Path, *, exclusive: bool) -> None:
        super().__init__(path, exclusive=exclusive)
        self.connects = 0

    def connect(self, timeout: float) -> socket.socket:
        """A socket connected to ``path``, counted."""
        sock = super().connect(timeout)
        self.connects += 1
        return sock


@pytest.fixture
def kestrel(volant_kestrel: Callable[..., KestrelHost], tmp_path: Path) -> KestrelHost:
    """A started kestrel whose workload is ``python -m http.server``; restartable with ``.restart()``."""
    manifest = parse_manifest(
        {
            "name": "pyhttp",
            "version": "1.0.0",
            "workload": http_server_workload(tmp_path),
            "health_check": {"endpoint": "/", "timeout_ms": 2000},
        }
    )
    return volant_kestrel(manifest_json(manifest))


def healthy_client(kestrel: KestrelHost, *, exclusive: bool = True) -> tuple[AgentClient, CountingChannel]:
    """A client whose kestrel answered its health check."""
    channel = CountingChannel(kestrel.socket_path, exclusive=exclusive)
    client = AgentClient(channel)
    client.wait_healthy(START_TIMEOUT, alive=lambda: True)
    return client, channel


def test_health_and_manifest(kestrel: KestrelHost) -> None:
    client, _ = healthy_client(kestrel)
    health = client.get("/v1/health")
    assert health.status == 200
    assert health.json()["status"] == "ok"
    assert health.headers["content-type"].startswith("application/json")
    manifest = client.get("/v1/manifest")
    assert manifest.status == 200
    assert manifest.json()["name"] == "pyhttp"


def test_wait_healthy_returns_the_health_body(kestrel: KestrelHost) -> None:
    client = AgentClient(UnixSocketChannel(kestrel.socket_path, exclusive=True))
    assert client.wait_healthy(START_TIMEOUT, alive=lambda: True)["status"] == "ok"


def test_keep_alive_reuses_one_connection(kestrel: KestrelHost) -> None:
    client, channel = healthy_client(kestrel)
    before = channel.connects
    for _ in range(5):
        assert client.get("/v1/health").status == 200
    assert channel.connects == before


def test_exclusive_channel_serialises_requests(kestrel: KestrelHost) -> None:
    client, channel = healthy_client(kestrel)
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda _: client.get("/v1/manifest").status, range(24)))
    assert statuses == [200] * 24
    assert channel.connects == 1


def test_shared_channel_allows_parallel_connections(kestrel: KestrelHost) -> None:
    client, channel = healthy_client(kestrel, exclusive=False)
    barrier = threading.Barrier(3)

    def request(_: int) -> AgentResponse:
        barrier.wait(10)
        return client.get("/v1/manifest")

    with ThreadPoolExecutor(max_workers=3) as pool:
        responses = list(pool.map(request, range(3)))
    assert [r.status for r in responses] == [200] * 3
    connects = channel.connects
    for _ in range(3):
        assert client.get("/v1/health").status == 200
    assert channel.connects == connects  # the parallel connections were kept for reuse


def test_error_status_keeps_the_connection(kestrel: KestrelHost) -> None:
    client, _ = healthy_client(kestrel)
    response = client.request("GET", "/not-v1/anything", timeout=10)
    assert response.status == 404
    assert client.get("/v1/health").status == 200  # the connection survived the error answer


def test_reconnects_after_the_agent_restarted(kestrel: KestrelHost) -> None:
    client, channel = healthy_client(kestrel)
    connects = channel.connects
    kestrel.restart()  # the kept-alive connection goes stale
    client.wait_healthy(START_TIMEOUT, alive=lambda: True)
    assert client.get("/v1/health").status == 200
    assert channel.connects > connects


def test_missing_socket_is_an_agent_error(tmp_path: Path) -> None:
    client = AgentClient(UnixSocketChannel(tmp_path / "absent.sock", exclusive=True))
    with pytest.raises(AgentError) as caught:
        client.get("/v1/health", timeout=2)
    assert not isinstance(caught.value, AgentTimeout)
    assert "absent.sock" in caught.value.message


def test_silent_agent_times_out(tmp_path: Path) -> None:
    path = tmp_path / "silent.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)  # accepts connections (backlog) and never answers
        client = AgentClient(UnixSocketChannel(path, exclusive=True))
        started = time.monotonic()
        with pytest.raises(AgentTimeout, match=r"no answer within 0\.5 s"):
            client.get("/v1/health", timeout=0.5)
        assert time.monotonic() - started < 5


def test_wait_healthy_stops_when_the_vmm_died(tmp_path: Path) -> None:
    client = AgentClient(UnixSocketChannel(tmp_path / "absent.sock", exclusive=True))
    with pytest.raises(AgentError, match="exited before its agent became healthy") as caught:
        client.wait_healthy(30, alive=lambda: False)
    assert not isinstance(caught.value, AgentTimeout)


def test_wait_healthy_deadline(tmp_path: Path) -> None:
    client = AgentClient(UnixSocketChannel(tmp_path / "absent.sock", exclusive=True))
    with pytest.raises(AgentTimeout, match=r"not healthy within 0\.6 s"):
        client.wait_healthy(0.6, alive=lambda: True)


def test_wait_healthy_deadline_names_the_agents_reason(
    volant_kestrel: Callable[..., KestrelHost],
) -> None:
    never_healthy = {
        "workload": {
            "base_url": f"http://127.0.0.1:{free_port()}",  # nothing listens there
            "entrypoint": [sys.executable, "-c", IDLE_PROGRAM],
        },
        "health_check": {"endpoint": "/", "timeout_ms": 200},
    }
    kestrel = volant_kestrel(never_healthy)
    kestrel.wait_listening(START_TIMEOUT)
    client = AgentClient(UnixSocketChannel(kestrel.socket_path, exclusive=True))
    reason = r"health answered 503: health check \S+ did not pass within 200 ms"
    with pytest.raises(AgentTimeout, match=reason):
        client.wait_healthy(3, alive=lambda: True)


def test_wait_healthy_stops_at_a_workload_that_cannot_start(
    volant_kestrel: Callable[..., KestrelHost],
) -> None:
    kestrel = volant_kestrel({"workload": {"entrypoint": ["/nonexistent/binary"]}})
    kestrel.wait_listening(START_TIMEOUT)
    client = AgentClient(UnixSocketChannel(kestrel.socket_path, exclusive=True))
    reason = r"cannot start the workload \(health answered 503: cannot start /nonexistent/binary"
    with pytest.raises(AgentError, match=reason) as caught:
        client.wait_healthy(120, alive=lambda: True)
    assert not isinstance(caught.value, AgentTimeout)  # it did not wait for the deadline


def test_response_json_error() -> None:
    with pytest.raises(AgentError, match="not JSON"):
        AgentResponse(status=200, headers={}, body=b"<html>").json()


# --- streaming: open() --------------------------------------------------------


class StreamingWorkload:
    """A kestrel (host mode) in front of ``workload_app.py``, whose gates the test opens directly."""

    def __init__(self, kestrel: KestrelHost, port: int) -> None:
        self.kestrel = kestrel
        self.port = port

    def release(self, gate: str) -> None:
        """Let ``GET /stream/<gate>`` finish (sent to the workload itself, not through kestrel)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/release/{gate}", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200

    def hung_up(self, gate: str) -> bool:
        """Whether the client of ``GET /stream/<gate>`` (kestrel) closed it before the release."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/hung-up/{gate}", timeout=10) as answer:
            return bool(json.loads(answer.read())["hung_up"])


@pytest.fixture
def streaming(volant_kestrel: Callable[..., KestrelHost], tmp_path: Path) -> StreamingWorkload:
    """kestrel whose workload streams ``/stream/<gate>`` until released and hashes ``/sha256``."""
    port = free_port()
    ready = tmp_path / "ready"
    ready.touch()
    manifest = {
        "name": "streams",
        "version": "1.0.0",
        "workload": script_workload(WORKLOAD_APP, port, str(ready)),
        "health_check": {"endpoint": "/healthz", "timeout_ms": 20000},
    }
    return StreamingWorkload(volant_kestrel(manifest_json(parse_manifest(manifest))), port)


def test_streamed_answer_arrives_while_it_is_written(streaming: StreamingWorkload) -> None:
    client, channel = healthy_client(streaming.kestrel)
    with client.open("GET", "/v1/stream/a") as stream:
        assert stream.status == 200 and stream.headers["content-type"] == "text/plain"
        chunks = iter(stream)
        assert next(chunks) == b"first\n"  # the workload is still waiting for its release
        streaming.release("a")
        assert b"".join(chunks) == b"rest\n"
    connects = channel.connects
    assert client.get("/v1/health").status == 200
    assert channel.connects == connects  # read to its end: the connection was kept for reuse


def test_stream_holds_the_exclusive_turn_until_closed(streaming: StreamingWorkload) -> None:
    client, channel = healthy_client(streaming.kestrel, exclusive=True)
    stream = client.open("GET", "/v1/stream/b")
    assert next(iter(stream)) == b"first\n"
    with pytest.raises(BusyError, match="stayed busy"):
        client.get("/v1/health", timeout=0.5)
    connects = channel.connects
    stream.close()  # before the end of the body
    assert client.get("/v1/health").status == 200  # the turn is free again
    assert channel.connects == connects + 1  # the half-read connection was closed, not reused
    stream.close()  # idempotent
    streaming.release("b")


def test_a_request_finding_every_ordinary_lane_held_gets_a_503_after_the_lane_wait(
    streaming: StreamingWorkload,
) -> None:
    # four lanes to the same kestrel socket (its host mode takes many connections): three ordinary
    lanes = SerialLaneChannel([streaming.kestrel.socket_path] * 4)
    client = AgentClient(lanes, lane_wait=0.5)
    client.wait_healthy(START_TIMEOUT, alive=lambda: True)
    streams = [client.open("GET", f"/v1/stream/lane-{n}") for n in range(3)]  # slow clients
    try:
        for stream in streams:
            assert next(iter(stream)) == b"first\n"
        # a fourth ordinary request waits the lane wait, not its own (long) timeout, then gets a 503
        with pytest.raises(BusyError, match=LANE_WAIT_SETTING) as caught:
            client.get("/v1/manifest", timeout=60)
        assert (caught.value.http_status, caught.value.retry_after_s) == (503, 1)
        # the lane kept for health probes is still free
        assert client.request("GET", "/v1/health", reserved=True).status == 200
    finally:
        for stream in streams:
            stream.close()
        for n in range(3):
            streaming.release(f"lane-{n}")
    assert client.get("/v1/manifest").status == 200  # the lanes are free again


def test_request_body_is_sent_as_it_is_read(streaming: StreamingWorkload) -> None:
    client, _ = healthy_client(streaming.kestrel, exclusive=False)
    data = os.urandom(6 * 1024 * 1024)
    digest = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), 1 << 20):
            yield data[start : start + (1 << 20)]

    length = {"Content-Length": str(len(data))}
    for body in (pieces(), io.BytesIO(data)):
        answer = client.request("POST", "/v1/sha256", body=body, headers=length, timeout=60)
        assert answer.status == 200 and answer.json() == digest


def test_a_stream_without_idle_limit_outlasts_its_request_timeout(streaming: StreamingWorkload) -> None:
    client, _ = healthy_client(streaming.kestrel)
    with client.open("GET", "/v1/stream/quiet", timeout=0.5) as stream:
        chunks = iter(stream)
        assert next(chunks) == b"first\n"
        stream.set_idle_timeout(None)
        release = threading.Timer(1.5, streaming.release, args=("quiet",))  # quiet for 3 timeouts
        release.start()
        assert b"".join(chunks) == b"rest\n"
        release.join()


def test_interrupt_breaks_off_a_waiting_read_and_drops_the_connection(streaming: StreamingWorkload) -> None:
    client, channel = healthy_client(streaming.kestrel)
    stream = client.open("GET", "/v1/stream/cut")
    chunks = iter(stream)
    assert next(chunks) == b"first\n"
    stream.set_idle_timeout(None)
    with ThreadPoolExecutor(max_workers=1) as pool:
        rest = pool.submit(lambda: b"".join(chunks))  # waits: the workload holds the rest back
        stream.interrupt()  # from another thread than the reader's
        with pytest.raises(AgentError, match="stream/cut"):
            rest.result(30)
    connects = channel.connects
    assert client.get("/v1/health").status == 200
    assert channel.connects == connects + 1  # the broken-off connection was not reused
    stream.interrupt()  # a no-op once ended
    streaming.release("cut")


def test_kestrel_lets_go_of_the_workload_when_its_client_hangs_up(streaming: StreamingWorkload) -> None:
    client, _ = healthy_client(streaming.kestrel, exclusive=False)
    stream = client.open("GET", "/v1/stream/bye")
    assert next(iter(stream)) == b"first\n"
    stream.close()  # hangs up in the middle of the answer, while the workload is quiet
    # kestrel noticed and closed its own connection to the workload, which saw it end.
    eventually(lambda: streaming.hung_up("bye"), "the workload's stream closed by kestrel", timeout=30)
    assert client.get("/v1/health").status == 200


def test_a_stream_interrupted_after_its_last_byte_gives_no_dead_connection_back(
    streaming: StreamingWorkload,
) -> None:
    # A client hanging up just as the answer ends: interrupt() comes after the body's last byte was
    # read but before the stream saw its end. Its connection is shut down: it must not be reused.
    client, _ = healthy_client(streaming.kestrel, exclusive=False)
    stream = client.open("GET", "/v1/manifest")
    chunks = iter(stream)
    assert json.loads(next(chunks))["name"] == "streams"  # the whole body (it has a Content-Length)
    stream.interrupt()
    assert list(chunks) == []  # the end, read from what was already received
    data = os.urandom(1 << 16)
    answer = client.request(
        "POST", "/v1/sha256", body=iter([data]), headers={"Content-Length": str(len(data))}
    )
    assert answer.json() == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
