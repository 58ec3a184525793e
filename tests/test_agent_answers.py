"""What volantd passes between its clients and a guest: headers in, answer sizes out.

A real volantd (the ``test-host-process`` backend: a real kestrel and workload, no QEMU) runs one
VM whose workload echoes requests and answers ``/big/<bytes>`` with as many bytes as asked.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from volant_core.agent_client import HEALTH_PATH, MAX_ANSWER_SETTING, AgentClient
from volant_core.api.agent_relay import forwarded_headers
from volant_core.api.server import MAX_HEAD_BYTES
from volant_core.channels import UnixSocketChannel
from volant_core.errors import AgentAnswerTooLarge
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import host_process_daemon
from volant_core.testing.kestrel import script_workload
from volant_core.testing.waiting import eventually, free_port

WORKLOAD_APP = Path(__file__).parent / "guest" / "workload_app.py"
#: volantd's limit on an answer read whole, in this module.
LIMIT = 1024 * 1024
#: What the workload answers when a whole answer is asked for: a hundred times the limit.
HUGE = 100 * LIMIT


class Guest:
    """The running daemon and the port of its VM's workload (reachable from the host directly)."""

    def __init__(self, api: RunningDaemon, port: int) -> None:
        self.api = api
        self.port = port

    def workload(self, path: str) -> Any:
        """``GET path`` on the workload itself, not through volantd."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as answer:
            return json.loads(answer.read())

    def raw(self, head: bytes) -> tuple[int, dict[str, Any]]:
        """Send the request head ``head`` to volantd over a socket as is; its status and JSON body
        (``{}`` for an error answer).
        """
        host, port = self.api.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(head)
            data = b"".join(iter(lambda: sock.recv(65536), b""))
        head_part, _, body = data.partition(b"\r\n\r\n")
        status = int(head_part.split(b" ")[1])
        return status, json.loads(body) if status == 200 else {}


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    """volantd (answers read whole limited to :data:`LIMIT`) with one running VM, ``echo``."""
    port = free_port()
    ready = tmp_path_factory.mktemp("workload") / "ready"
    ready.touch()
    manifest = {
        "name": "answers",
        "version": "1.0.0",
        "runtime": "answers",
        "workload": script_workload(WORKLOAD_APP, port, str(ready)),
        "health_check": {"endpoint": "/healthz", "timeout_ms": 20000},
        "openapi": f"/big/{HUGE}",
        "actions": {
            "huge": {"method": "GET", "path": f"/big/{HUGE}"},
            "huge-chunked": {"method": "GET", "path": f"/big/{HUGE}?chunked"},
            "fits": {"method": "GET", "path": f"/big/{LIMIT}"},
        },
    }
    with host_process_daemon(agent_max_answer=LIMIT) as api:
        assert api.request("POST", "/api/v1/plugins", manifest).status == 201
        assert api.request("POST", "/api/v1/vms", {"name": "echo", "plugin": "answers"}).status == 201
        vm = api.wait_for_status("echo", {"running", "crashed"}, timeout=60)
        assert vm["status"] == "running", vm
        yield Guest(api, port)


def test_a_small_answer_whose_body_pauses_is_relayed_as_it_comes(guest: Guest) -> None:
    """A small answer is read whole before it is relayed only when its body follows its head at once:
    one that pauses is streamed, what came before the pause first (neither held back nor lost).
    """
    host, port = guest.api.url.removeprefix("http://").rsplit(":", 1)
    client = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        client.request("GET", "/api/v1/vms/echo/agent/v1/held/small", headers={"Host": "localhost"})
        answer = client.getresponse()
        assert (answer.status, answer.getheader("Content-Length")) == (200, "11")
        assert answer.read(6) == b"first\n"  # before the rest is written
        release = urllib.request.Request(f"http://127.0.0.1:{guest.port}/release/small", method="POST")
        urllib.request.urlopen(release, timeout=10).close()
        assert answer.read() == b"rest\n"
    finally:
        client.close()


def test_a_body_larger_than_the_head_limit_is_relayed_whole(guest: Guest) -> None:
    """Only a request's head counts against the server's head limit: a body four times that size,
    sent after its head, reaches the workload whole.
    """
    body = bytes(range(256)) * (MAX_HEAD_BYTES * 4 // 256)
    octets = {"Content-Type": "application/octet-stream"}
    answer = guest.api.request("POST", "/api/v1/vms/echo/agent/v1/sha256", raw=body, headers=octets)
    assert answer.status == 200, answer
    assert answer.json() == {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}


# ------------------------------------------------------------------------------- answer sizes


def refused_unread(guest: Guest, path: str) -> None:
    """``path`` on volantd is a 502 naming the limit and its setting, and the workload could write
    only a small part of its answer before volantd hung up (it was never read whole).
    """
    answer = guest.api.request("POST" if "/actions/" in path else "GET", path)
    assert answer.status == 502, answer
    message = answer.json()["error"]["message"]
    assert str(LIMIT) in message and MAX_ANSWER_SETTING in message
    written = eventually(
        lambda: (w := guest.workload("/big-written"))["done"] and w, "the end of the workload's answer", 60
    )
    assert written["bytes"] < HUGE // 4  # what the sockets in between buffer, not the whole answer


@pytest.mark.parametrize("action", ["huge", "huge-chunked"])
def test_an_action_answer_over_the_limit_is_a_502_and_never_read_whole(guest: Guest, action: str) -> None:
    refused_unread(guest, f"/api/v1/vms/echo/actions/{action}")


def test_an_openapi_document_over_the_limit_is_a_502_and_never_read_whole(guest: Guest) -> None:
    refused_unread(guest, "/api/v1/vms/echo/openapi")


def test_an_answer_of_the_limit_exactly_is_passed_on(guest: Guest) -> None:
    answer = guest.api.request("POST", "/api/v1/vms/echo/actions/fits")
    assert (answer.status, len(answer.body)) == (200, LIMIT)


def test_a_proxied_stream_is_not_limited(guest: Guest) -> None:
    answer = guest.api.request("GET", f"/api/v1/vms/echo/agent/v1/big/{8 * LIMIT}?chunked")
    assert (answer.status, len(answer.body)) == (200, 8 * LIMIT)


# --------------------------------------------------------------------------- headers proxied


def test_headers_named_in_connection_are_not_passed_on(guest: Guest) -> None:
    status, echoed = guest.raw(
        b"GET /api/v1/vms/echo/agent/v1/echo HTTP/1.1\r\nHost: localhost\r\n"
        b"Connection: close, X-Hop\r\nX-Hop: for volantd only\r\nX-End: for the workload\r\n\r\n"
    )
    assert status == 200
    assert echoed["headers"]["x-end"] == "for the workload"
    assert "x-hop" not in echoed["headers"]


def test_a_folded_header_ending_in_a_request_line_is_a_400_and_starts_no_request(guest: Guest) -> None:
    # RFC 9112 section 5.2: a server refuses a folded header (obs-fold) with 400, or unfolds it.
    # volantd's parser refuses it: neither the request nor the line in its header reaches kestrel.
    status, _ = guest.raw(
        b"GET /api/v1/vms/echo/agent/v1/asked HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"X-A: foo\r\n GET /v1/manifest HTTP/1.1\r\n\r\n"
    )
    assert status == 400


@pytest.mark.parametrize("value", [b"a\rTransfer-Encoding: chunked", b"a\x00b"])
def test_a_header_value_with_cr_or_nul_is_a_400_at_the_server(guest: Guest, value: bytes) -> None:
    status, _ = guest.raw(
        b"GET /api/v1/vms/echo/agent/v1/echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"X-A: " + value + b"\r\n\r\n"
    )
    assert status == 400


@pytest.mark.parametrize("value", ["a\r\nTransfer-Encoding: chunked", "a\r\n GET /v1/x HTTP/1.1", "a\0"])
def test_the_proxy_refuses_a_line_break_any_server_let_through(value: str) -> None:
    req = falcon.Request(falcon.testing.create_environ(headers={"X-A": value}))
    with pytest.raises(falcon.HTTPBadRequest) as refused:
        forwarded_headers(req)
    assert "X-A" in str(refused.value.description)


@pytest.mark.parametrize("tail", ["%C2%B2", "ten"])
def test_kestrel_refuses_a_log_tail_that_is_no_whole_number(guest: Guest, tail: str) -> None:
    answer = guest.api.request("GET", f"/api/v1/vms/echo/agent/v1/logs?tail={tail}")
    assert answer.status == 400, answer
    assert answer.json()["error"]["message"].startswith("tail:")
    assert guest.api.request("GET", "/api/v1/vms/echo/agent/v1/logs?tail=3").status == 200


def test_a_health_probe_answer_over_the_limit_is_an_agent_error(tmp_path: Path) -> None:
    """A guest whose agent (kestrel replaced by its root) answers health probes without end."""
    path = tmp_path / "agent.sock"
    written = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen()

        def answer_without_end() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                sent = 0
                try:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    while sent < HUGE:
                        conn.sendall(b"10000\r\n" + b" " * 0x10000 + b"\r\n")
                        sent += 0x10000
                except OSError:
                    pass
                written.append(sent)

        thread = threading.Thread(target=answer_without_end)
        thread.start()
        client = AgentClient(UnixSocketChannel(path, exclusive=True), max_answer=LIMIT)
        with pytest.raises(AgentAnswerTooLarge, match=MAX_ANSWER_SETTING):
            client.request("GET", HEALTH_PATH, timeout=30, reserved=True)
        client.close()
        thread.join(60)
    assert written and written[0] < HUGE // 4
