"""kestrel reads requests strictly: raw, hostile requests over a real socket to a real kestrel.

A request that could be read two ways (a folded header, whitespace around a header's name, both
``Transfer-Encoding`` and ``Content-Length``, a header ending in a request line) is one request
answered 400, or one request read as written: never two, never one whose answer is another's.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from volant_core.agent_client import AgentClient
from volant_core.channels import UnixSocketChannel
from volant_core.manifest import manifest_json, parse_manifest
from volant_core.testing.kestrel import KestrelHost, script_workload
from volant_core.testing.waiting import free_port

WORKLOAD_APP = Path(__file__).parent / "guest" / "workload_app.py"
#: A body that ends a chunked body at once and carries a second request after it.
SMUGGLED = b"0\r\n\r\nGET /v1/smuggled HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n"


@pytest.fixture
def echoing(volant_kestrel: Callable[..., KestrelHost], tmp_path: Path) -> KestrelHost:
    """A healthy kestrel (host mode, UNIX socket) in front of a workload that echoes each request."""
    port = free_port()
    ready = tmp_path / "ready"
    ready.touch()
    manifest = {
        "name": "echo",
        "version": "1.0.0",
        "workload": script_workload(WORKLOAD_APP, port, str(ready)),
        "health_check": {"endpoint": "/healthz", "timeout_ms": 20000},
    }
    kestrel = volant_kestrel(manifest_json(parse_manifest(manifest)))
    AgentClient(UnixSocketChannel(kestrel.socket_path, exclusive=True)).wait_healthy(30, alive=lambda: True)
    return kestrel


class _Received:
    """What kestrel sent, read as a socket by :class:`http.client.HTTPResponse`, one answer after another."""

    def __init__(self, data: bytes) -> None:
        self.reader = _Unclosed(data)

    def makefile(self, mode: str) -> io.BufferedIOBase:
        """The same reader every time, so each answer starts where the previous one ended."""
        return self.reader


class _Unclosed(io.BytesIO):
    """Bytes that stay readable when a finished answer closes its reader."""

    def close(self) -> None:
        """Keep the rest for the next answer."""


def exchange(kestrel: KestrelHost, raw: bytes) -> list[tuple[int, bytes]]:
    """Send ``raw`` on one connection and read every answer until kestrel closes it (the last
    request asks it to).
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(15)
        sock.connect(str(kestrel.socket_path))
        sock.sendall(raw)
        data = b"".join(iter(lambda: sock.recv(65536), b""))
    received = _Received(data)
    answers = []
    while received.reader.tell() < len(data):
        answer = http.client.HTTPResponse(received)  # type: ignore[arg-type]
        answer.begin()
        answers.append((answer.status, answer.read()))
    return answers


def framing(*headers: str) -> bytes:
    """A POST to the workload with ``headers`` and :data:`SMUGGLED` as its body."""
    head = "".join(f"{line}\r\n" for line in headers)
    return b"POST /v1/first HTTP/1.1\r\nHost: k\r\n" + head.encode() + b"\r\n" + SMUGGLED


AMBIGUOUS = {
    "folded Transfer-Encoding": framing(
        f"Content-Length: {len(SMUGGLED)}", "X-A: foo", " Transfer-Encoding: chunked"
    ),
    "whitespace before the colon": framing(f"Content-Length: {len(SMUGGLED)}", "Transfer-Encoding : chunked"),
    "whitespace before the name": framing(f"Content-Length: {len(SMUGGLED)}", "\tTransfer-Encoding: chunked"),
    "both Transfer-Encoding and Content-Length": framing(
        f"Content-Length: {len(SMUGGLED)}", "Transfer-Encoding: chunked"
    ),
    "a coding other than chunked": framing(f"Content-Length: {len(SMUGGLED)}", "Transfer-Encoding: identity"),
    "chunked twice": framing("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"),
    "two lengths": framing("Content-Length: 5", f"Content-Length: {len(SMUGGLED)}"),
    "a signed length": framing("Content-Length: +5"),
}


@pytest.mark.parametrize("raw", AMBIGUOUS.values(), ids=AMBIGUOUS.keys())
def test_an_ambiguous_request_is_one_400_and_the_end_of_the_connection(
    echoing: KestrelHost, raw: bytes
) -> None:
    answers = exchange(echoing, raw)
    assert [status for status, _ in answers] == [400]
    assert json.loads(answers[0][1])["error"]["code"] == "bad_request"


def test_a_header_ending_in_a_request_line_does_not_start_another_request(echoing: KestrelHost) -> None:
    raw = b"GET /v1/asked HTTP/1.1\r\nConnection: close\r\nX-A: x POST /v1/shutdown HTTP/1.1\r\n\r\n"
    answers = exchange(echoing, raw)
    assert len(answers) == 1
    status, body = answers[0]
    echoed = json.loads(body)
    assert (status, echoed["path"]) == (200, "/asked")
    assert echoed["headers"]["x-a"] == "x POST /v1/shutdown HTTP/1.1"


def test_a_chunked_body_is_still_read(echoing: KestrelHost) -> None:
    raw = (
        b"POST /v1/one HTTP/1.1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n0\r\n\r\n"
    )
    answers = exchange(echoing, raw)
    assert [(status, json.loads(body)["path"]) for status, body in answers] == [(200, "/one")]
    assert json.loads(answers[0][1])["body"] == "hello"
