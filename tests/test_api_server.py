"""volantd's HTTP server: clients that hold connections open without finishing a request, requests
answered on the event loop while every API thread is busy, and the request log.

Run on the real ``volantd`` executable with an open-file limit of 1,024: slow clients must neither
stop ``/healthz`` from answering nor keep their connections, and an idle daemon must not burn CPU,
even when there are more of them than descriptors it may open.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import resource
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import falcon
import pytest

from volant_core.api.openapi.routes import RoutedApp
from volant_core.api.server import MAX_HEAD_BYTES, ApiServer, ServerLimits
from volant_core.testing.daemon import RunningProcess, running_daemon, volantd_process
from volant_core.testing.processes import cpu_used_over
from volant_core.testing.waiting import eventually, free_port

#: Half a request line: what a slow (or malicious) client sends before it stops.
HALF_REQUEST = b"GET /healthz HT"
#: A probe's socket timeout: generous for a request a healthy server answers in milliseconds, and
#: well below the daemon's header timeout, so that an answer does not come from the slow
#: connections being closed.
PROBE_TIMEOUT_S = 3.0
HEADER_TIMEOUT_S = 12.0
#: CPU seconds an idle daemon may use over :data:`IDLE_WINDOW_S` (a spinning loop uses them all).
IDLE_WINDOW_S = 3.0
IDLE_CPU_S = 0.5


def _open_files_limit(soft: int, hard: int) -> Callable[[], None]:
    """A ``preexec`` setting the child's limit of open files."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return limit


@contextlib.contextmanager
def _daemon(tmp_path: Path, preexec: Callable[[], None], header_timeout: float) -> Iterator[RunningProcess]:
    env = {**os.environ, "VOLANT_API_HEADER_TIMEOUT": str(header_timeout)}
    with volantd_process(tmp_path, free_port(), env=env, preexec=preexec) as daemon:
        yield daemon


def _stalled_connections(url: str, count: int) -> list[socket.socket]:
    """``count`` connections that sent half a request line and wait."""
    port = int(url.rsplit(":", 1)[1])
    stalled = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(HALF_REQUEST)
        stalled.append(sock)
    return stalled


def _healthz(url: str, timeout: float) -> int:
    """The status of one ``GET /healthz`` on a fresh connection (socket timeout ``timeout``)."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def _closed_by_server(sock: socket.socket) -> bool:
    """Wait (up to the socket's timeout) until the server closes ``sock``."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_slow_clients_neither_block_healthz_nor_keep_their_connections(tmp_path: Path) -> None:
    """2,000 connections that send half a request line, against a daemon that may open 1,024 files
    (soft and hard limit): ``/healthz`` answers throughout, the server closes every one of them,
    the daemon never runs out of descriptors and uses next to no CPU meanwhile.
    """
    with _daemon(tmp_path, _open_files_limit(1024, 1024), HEADER_TIMEOUT_S) as daemon:
        pid = daemon.process.pid
        stalled = _stalled_connections(daemon.url, 2000)
        try:
            eventually(lambda: _open_descriptors(pid) > 500, "volantd holding the slow connections")
            for _ in range(5):
                assert _healthz(daemon.url, PROBE_TIMEOUT_S) == 200
            assert cpu_used_over(pid, IDLE_WINDOW_S) < IDLE_CPU_S
            assert all(_closed_by_server(sock) for sock in stalled)
        finally:
            for sock in stalled:
                sock.close()
        eventually(lambda: _open_descriptors(pid) < 100, "volantd closing the connections")
        assert _healthz(daemon.url, PROBE_TIMEOUT_S) == 200
        assert cpu_used_over(pid, IDLE_WINDOW_S) < IDLE_CPU_S
    assert "Too many open files" not in (tmp_path / "volantd.log").read_text()


def test_each_answered_request_is_logged_once_unless_the_log_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="volant_core.api.server")
    line = re.compile(r"GET /api/v1/vms/ghost\?api_key=<redacted> 40[14] \d+\.\dms$")
    for access_log in (True, False):
        caplog.clear()
        with running_daemon(access_log=access_log) as api:
            assert api.request("GET", "/api/v1/vms/ghost?api_key=secret").status in (401, 404)
        # the daemon has stopped: every line it would log is written
        logged = [record.getMessage() for record in caplog.records if record.name == "volant_core.api.server"]
        requests = [message for message in logged if "/api/v1/vms/ghost" in message]
        assert [bool(line.search(message)) for message in requests] == ([True] if access_log else [])
        assert "secret" not in caplog.text


def test_a_header_spelled_with_underscores_does_not_pass_for_one_with_dashes() -> None:
    """Behind a trusted proxy, only ``X-Forwarded-For`` names the client: ``X_Forwarded_For`` (which
    a WSGI environ would spell the same) is dropped, so it cannot smuggle an allowed address in.
    """
    with running_daemon(api_allow_cidr="10.0.0.0/8", trusted_proxies="127.0.0.0/8") as api:
        assert api.request("GET", "/api/v1/vms", headers={"X-Forwarded-For": "10.1.2.3"}).status == 200
        assert api.request("GET", "/api/v1/vms", headers={"X_Forwarded_For": "10.1.2.3"}).status == 403


def test_a_request_head_over_the_limit_is_a_400_and_ends_its_connection() -> None:
    """The parser keeps no limit of its own on a request head: volantd refuses one over
    ``MAX_HEAD_BYTES`` (it would otherwise hold all a client sends), and still answers one below.
    """
    with running_daemon() as api:
        port = int(api.url.rsplit(":", 1)[1])
        assert api.request("GET", "/healthz", headers={"X-Big": "a" * (MAX_HEAD_BYTES // 2)}).status == 200
        start = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: "
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            # One byte over, and no more: the server reads all that was sent before it closes (bytes
            # left unread would make its close a reset, which could drop its answer).
            sock.sendall(start + b"a" * (MAX_HEAD_BYTES + 1 - len(start)))
            answer = b"".join(iter(lambda: sock.recv(65536), b""))  # to its end: the server closes
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert f"over {MAX_HEAD_BYTES} bytes".encode() in answer
        assert api.request("GET", "/healthz").status == 200


def test_a_pipelined_head_over_the_limit_during_a_stream_ends_the_connection_without_a_400_in_it() -> None:
    """While an answer streams (the event stream), a client may send its next request: a head of
    that one over the limit closes the connection (nothing is held) and no 400 is written into the
    streamed answer.
    """
    with running_daemon() as api:
        port = int(api.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /api/v1/events/vms HTTP/1.1\r\nHost: localhost\r\n\r\n")
            received = b""
            while b"\r\n\r\n" not in received:
                received += sock.recv(65536)
            assert received.startswith(b"HTTP/1.1 200 ")
            start = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: "
            sock.sendall(start + b"a" * (MAX_HEAD_BYTES + 1 - len(start)))  # read whole, then closed
            received += b"".join(iter(lambda: sock.recv(65536), b""))  # to its end: the server closes
        assert b"HTTP/1.1 400" not in received
        assert api.request("GET", "/healthz").status == 200


def _ask(port: int, head: bytes) -> socket.socket:
    """A connection to the daemon that has sent ``head`` (and, maybe, part of a body)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT_S)
    sock.sendall(head)
    return sock


def test_healthz_answers_while_every_api_thread_waits_and_other_routes_wait_their_turn() -> None:
    """A liveness probe must not queue behind slow requests: with one API thread, held by a request
    whose body never finishes, ``/healthz`` still answers at once (it is answered on the server's
    event loop), while a route that needs a thread is answered only once the thread is free.
    """
    with running_daemon(api_threads=2, api_body_timeout=30) as api:
        port = int(api.url.rsplit(":", 1)[1])
        post = b"POST /api/v1/vms HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        held = [_ask(port, post + b"Content-Length: 100\r\n\r\n{") for _ in range(2)]  # both threads
        with contextlib.ExitStack() as stack:
            for sock in held:
                stack.enter_context(sock)
            waiting = stack.enter_context(
                _ask(port, b"GET /api/v1/system/status HTTP/1.1\r\nHost: localhost\r\n\r\n")
            )
            waiting.settimeout(1.0)
            with pytest.raises(TimeoutError):
                waiting.recv(1)
            assert _healthz(api.url, 1.0) == 200
            held[0].sendall(b"}" + b" " * 98)  # the first body ends (a 422): its thread is free
            waiting.settimeout(PROBE_TIMEOUT_S)
            assert waiting.recv(65536).startswith(b"HTTP/1.1 200 ")


class _Echo:
    """Answers a request's body: says it never blocks, yet reading a body waits for the client."""

    answers_on_loop = True

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = req.bounded_stream.read()


def test_a_request_with_a_body_is_answered_in_a_thread_even_on_a_route_answered_on_the_loop() -> None:
    """A body may come slowly, and the event loop is what receives it: read there, it would wait
    for itself until the body timeout (408). A request with a body therefore always goes to a thread.
    """
    app = RoutedApp()
    app.add_route("/echo", _Echo())
    limits = ServerLimits(
        max_connections=16,
        threads=2,
        header_timeout=10,
        body_timeout=10,
        keepalive_timeout=5,
        access_log=False,
    )
    server = ApiServer(app, "127.0.0.1", 0, limits)
    server.start()
    try:
        head = b"POST /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 4\r\n\r\nab"
        with _ask(server.address[1], head) as sock:
            time.sleep(0.2)  # the app is reading the body by now
            sock.sendall(b"cd")
            answer = b"".join(iter(lambda: sock.recv(65536), b""))
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert answer.endswith(b"\r\n\r\nabcd")
    finally:
        server.stop()


def test_a_client_waiting_for_100_continue_is_refused_without_being_told_to_send_its_body() -> None:
    """``Expect: 100-continue`` asks the server to say whether the body is wanted before it comes:
    a request the API refuses (no API key) gets its 401 and never a ``100 Continue``, so a client
    does not upload a large body for nothing; one it accepts is told to go on.
    """
    head = (
        "POST /api/v1/plugins HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\nExpect: 100-continue\r\n{key}\r\n"
    )
    with running_daemon(api_key="k" * 32) as api:
        port = int(api.url.rsplit(":", 1)[1])
        with _ask(port, head.format(key="").encode()) as sock:
            refused = sock.recv(65536)
        with _ask(port, head.format(key="X-Volant-API-Key: " + "k" * 32 + "\r\n").encode()) as sock:
            told = sock.recv(65536)
            sock.sendall(b"{}")
            accepted = told + sock.recv(65536)
    assert refused.startswith(b"HTTP/1.1 401 ")
    assert accepted.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 422 ")


def test_a_body_that_stops_coming_is_a_408_after_the_body_timeout_and_frees_its_thread() -> None:
    """A client that sends part of a body and stops holds an API thread only for
    ``VOLANT_API_BODY_TIMEOUT``: then it gets a 408 that names the wait, and the thread serves again.
    """
    with running_daemon(api_threads=2, api_body_timeout=1) as api:
        port = int(api.url.rsplit(":", 1)[1])
        head = b"POST /api/v1/vms HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        stalled = [_ask(port, head + b"Connection: close\r\nContent-Length: 100\r\n\r\n{") for _ in range(2)]
        for sock in stalled:
            with sock:
                answer = b"".join(iter(lambda: sock.recv(65536), b""))  # noqa: B023 (read here)
                assert answer.startswith(b"HTTP/1.1 408 ")
                assert b"no request body for 1 s" in answer
        assert api.request("GET", "/api/v1/system/status", timeout=PROBE_TIMEOUT_S).status == 200
