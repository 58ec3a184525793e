"""A late answer never reaches the wrong caller.

A virtio-serial lane keeps kestrel's answer to a request the host gave up on (a health probe that
timed out while the guest booted) and delivers it to whoever connects to that lane next. The host
numbers every request and kestrel echoes the number, so the client recognises such an answer and
skips it. The lane's behaviour is played here by a small UNIX-socket server (a TEST DOUBLE: a real
lane needs a guest, and the timing that strands an answer cannot be forced on a booted one); kestrel's
side is the real kestrel in host mode.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from volant_core.agent.constants import REQUEST_ID_HEADER
from volant_core.agent_client import AgentClient
from volant_core.channels import UnixSocketChannel
from volant_core.manifest import manifest_json, parse_manifest
from volant_core.testing.kestrel import KestrelHost, http_server_workload


def _answer(body: bytes, request_id: str) -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{REQUEST_ID_HEADER}: {request_id}\r\n\r\n"
    ).encode() + body


def _request_id(head: bytes) -> str:
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == REQUEST_ID_HEADER.lower():
            return value.strip()
    raise AssertionError(f"the host sent no {REQUEST_ID_HEADER}: {head!r}")


@pytest.fixture
def stranded_lane(tmp_path: Path) -> Iterator[Path]:
    """A lane holding the answer to an abandoned health probe: whoever connects first gets it,
    then the answer to its own request."""
    path = tmp_path / "lane.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            stale = _answer(b'{"status": "ok"}', "0" * 32)
            conn.sendall(stale + _answer(b'{"mine": true}', _request_id(head)))
            conn.recv(1)  # until the client closes

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path
    server.close()
    thread.join(10)


def test_the_client_skips_an_answer_meant_for_an_earlier_request(stranded_lane: Path) -> None:
    client = AgentClient(UnixSocketChannel(stranded_lane, exclusive=True))
    answer = client.request("GET", "/v1/workload/thing", timeout=10)
    assert answer.json() == {"mine": True}
    client.close()


@pytest.fixture
def kestrel(volant_kestrel: Callable[..., KestrelHost], tmp_path: Path) -> KestrelHost:
    """kestrel in host mode in front of ``python -m http.server``."""
    manifest = parse_manifest(
        {
            "name": "pyhttp",
            "version": "1.0.0",
            "workload": http_server_workload(tmp_path),
            "health_check": {"endpoint": "/", "timeout_ms": 2000},
        }
    )
    return volant_kestrel(manifest_json(manifest))


def _raw_exchange(path: Path, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("path", ["/v1/health", "/v1/workload/"])
def test_kestrel_echoes_the_request_number(kestrel: KestrelHost, path: str) -> None:
    AgentClient(UnixSocketChannel(kestrel.socket_path, exclusive=False)).wait_healthy(30, alive=lambda: True)
    request_id = "0123456789abcdef0123456789abcdef"
    request = f"GET {path} HTTP/1.1\r\n{REQUEST_ID_HEADER}: {request_id}\r\nConnection: close\r\n\r\n"
    head = _raw_exchange(kestrel.socket_path, request.encode()).split(b"\r\n\r\n")[0]
    assert _request_id(head) == request_id


def test_kestrel_does_not_echo_what_cannot_be_a_request_number(kestrel: KestrelHost) -> None:
    AgentClient(UnixSocketChannel(kestrel.socket_path, exclusive=False)).wait_healthy(30, alive=lambda: True)
    request = f"GET /v1/health HTTP/1.1\r\n{REQUEST_ID_HEADER}: not-hex\r\nConnection: close\r\n\r\n"
    head = _raw_exchange(kestrel.socket_path, request.encode()).split(b"\r\n\r\n")[0]
    assert REQUEST_ID_HEADER.lower().encode() not in head.lower()
