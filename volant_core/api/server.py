"""Serving the API: the WSGI app under uvicorn, in a background thread of volantd (ADR 24).

uvicorn's event loop holds every connection, so idle or slow clients cost a
socket and a little memory, never a thread; the app runs in thread pools
(:mod:`volant_core.api.wsgi_bridge`). On top of what uvicorn does (keep-alive
and its timeout, WebSocket handshakes and pings) this module adds what it lacks:
a timeout for the request head, and a cap on connections below the open-file
limit that pushes out the connection waiting longest for its head.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import resource
import socket
import sys
import threading
from dataclasses import dataclass

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from volant_core.api.openapi.routes import RoutedApp
from volant_core.api.security import redact_query_key
from volant_core.api.upgrade import PING_INTERVAL_S
from volant_core.api.wsgi_bridge import WsgiApp, WsgiBridge
from volant_core.settings import Settings
from volant_core.threads import DaemonThreadPool

log = logging.getLogger(__name__)

#: Pending connections the kernel holds before volantd accepts them.
BACKLOG = 2048
#: Connections accepted at most per wake-up of the loop (asyncio's ``backlog``): few, so that
#: the connections they push out are closed before more are accepted.
ACCEPT_BATCH = 16
#: Descriptors kept for everything but client connections (the store, logs, VM sockets): at
#: least this many, and a quarter of the limit.
RESERVED_FILES = 64
#: The interpreter's thread switch interval while volantd serves (seconds; Python's default is
#: 0.005). Every request is handed between the loop's thread and pool threads; with 5 ms a hand-over
#: to a thread waiting for the GIL could wait that long (a proxied request took 3x longer).
SWITCH_INTERVAL_S = 0.0005
#: Most bytes a request head may take (the request line and headers); a longer one is refused with
#: 400 and its connection closed (h11, the parser used before, stopped at 16 KiB; kestrel at 64).
MAX_HEAD_BYTES = 64 * 1024
#: Longest wait for open answers when the server stops, in seconds.
STOP_GRACE_S = 2.0
#: uvicorn's tick (seconds): how often the server refreshes its ``Date`` header and looks at its limits.
TICK_S = 0.1
#: Ticks counted before the counter wraps, as uvicorn counts them.
TICKS_PER_DAY = 864_000


@dataclass(frozen=True)
class ServerLimits:
    """How much the API server takes on, and how long it waits for a client."""

    max_connections: int
    threads: int
    header_timeout: float
    body_timeout: float
    keepalive_timeout: float
    access_log: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerLimits:
        """The limits of ``VOLANT_API_*`` and ``VOLANT_ACCESS_LOG``."""
        return cls(
            max_connections=settings.api_max_connections,
            threads=settings.api_threads,
            header_timeout=settings.api_header_timeout,
            body_timeout=settings.api_body_timeout,
            keepalive_timeout=settings.api_keepalive_timeout,
            access_log=settings.access_log,
        )


class _GuardedProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (the ``httptools`` parser), guarded against clients that connect
    and do not ask.

    A connection must bring its request head within :attr:`header_timeout`
    seconds of connecting (or of its previous answer), or it is closed. At most
    :attr:`max_connections` are kept: a new one beyond that closes the connection
    that has waited longest for its request head (an idle keep-alive or a slow
    client), or, when every connection is busy with a request, is closed itself.
    Descriptors therefore never run out because of clients, and a newcomer is served
    at once however many connections dawdle. A request head over :data:`MAX_HEAD_BYTES` is
    refused (the parser itself has no limit): with a 400, or by closing the connection when it
    comes pipelined while an answer is still being sent.
    """

    # Set per server, on a subclass made by ApiServer.
    header_timeout: float
    max_connections: int
    waiting: dict[_GuardedProtocol, None]  # connections waiting for a request head, oldest first

    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes: int | None = None  # bytes received since a request head began, until it ends

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            oldest = next(iter(self.waiting), None)
            if oldest is None:
                log.warning("%d connections are all busy: refusing one more", len(self.connections) - 1)
                transport.close()
                return
            oldest.close()
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_bytes is not None and not self.transport.is_closing():
            # A head that began in this data is counted from the data's start: at most one read more.
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                if self.cycle is not None and not self.cycle.response_complete:
                    self.transport.close()  # a pipelined head: no 400 in the midst of an answer
                else:
                    self.send_400_response(f"The request head is over {MAX_HEAD_BYTES} bytes.")

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        self._head_in()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # no pipelined request started: wait for the next
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_in()
        super().connection_lost(exc)

    def close(self) -> None:
        """Close this connection (it waits for a request head)."""
        self._head_in()
        self.transport.close()

    def _await_head(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_late)
            self.waiting[self] = None

    def _head_in(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self.waiting.pop(self, None)

    def _head_late(self) -> None:
        self._head_timer = None
        self.waiting.pop(self, None)
        if not self.transport.is_closing():
            self.close()


class _AnsweringWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, except that an invalid opening still reaches the app, whose
    middleware and resource refuse it as usual (401/403 first, then a 422 naming the header),
    instead of uvicorn's bare 400. The app never accepts such an opening (its check fails).
    """

    def handle_connect(self, event: Request) -> None:
        answer = self.conn.accept(event)
        if answer.status_code == 101:
            super().handle_connect(event)
            return
        stand_in = dataclasses.replace(answer, status_code=101)
        self.conn.accept = lambda request: stand_in  # type: ignore[method-assign]
        try:
            super().handle_connect(event)
        finally:
            del self.conn.accept


def _listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port``. Made with its protocol number, as asyncio wants it
    to set ``TCP_NODELAY`` on the connections accepted (without it, every keep-alive answer written
    in two pieces waits for the client's delayed ACK: ~40 ms).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, with the kernel's full backlog and a stop that takes effect at once.

    uvicorn notices ``should_exit`` at its next tick (every 0.1 s) and, stopping, waits 0.1 s more
    for the connections it asked to close: a volantd with nothing to drain would take up to 0.2 s
    to stop (each test daemon too).
    """

    _loop: asyncio.AbstractEventLoop | None = None
    _woken: asyncio.Event | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for sock in sockets or []:
            sock.listen(BACKLOG)  # asyncio listened with the accept batch: give the kernel its queue

    async def main_loop(self) -> None:
        """Tick as uvicorn does (its ``on_tick`` keeps the ``Date`` header current), but wake at once
        when :meth:`request_exit` is called.
        """
        self._woken = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % TICKS_PER_DAY
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK_S):
                    await self._woken.wait()

    def request_exit(self) -> None:
        """Stop serving (callable from any thread)."""
        self.should_exit = True
        loop, woken = self._loop, self._woken
        if loop is not None and woken is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(woken.set)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown when connections are open; without any, only close the listeners."""
        if self.server_state.connections:
            await super().shutdown(sockets)
            return
        for server in self.servers:
            server.close()
        for server in self.servers:
            await server.wait_closed()


def raise_open_file_limit() -> tuple[int, int]:
    """Raise this process's soft limit of open files to its hard limit (each connection takes one;
    the usual soft limit, 1,024, is there for ``select()`` users, which volantd is not). Returns
    the (soft, hard) limits now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as error:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, error)
    return soft, hard


class ApiServer:
    """The HTTP server of volantd, started in a background thread."""

    def __init__(self, app: WsgiApp, host: str, port: int, limits: ServerLimits) -> None:
        """Serve ``app`` on ``host:port`` (port 0: any free one) within ``limits``."""
        self.app = app  # the WSGI application served
        self.limits = limits
        self._socket = _listening_socket(host, port)
        self.calls = DaemonThreadPool(self.limits.threads, "api")
        self.streams = DaemonThreadPool(self.limits.max_connections, "api-stream")
        bridge = WsgiBridge(
            app,
            calls=self.calls,
            streams=self.streams,
            body_timeout=self.limits.body_timeout,
            on_done=_log_request if self.limits.access_log else None,
            on_loop=app.answers_on_loop if isinstance(app, RoutedApp) else None,
        )
        self._protocol: type[_GuardedProtocol] = type(
            "_Http",
            (_GuardedProtocol,),
            {
                "header_timeout": self.limits.header_timeout,
                "max_connections": self.limits.max_connections,
                "waiting": {},
            },
        )
        config = uvicorn.Config(
            bridge,
            http=self._protocol,
            ws=_AnsweringWebSocketProtocol,
            ws_ping_interval=PING_INTERVAL_S,
            ws_ping_timeout=PING_INTERVAL_S,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,  # X-Forwarded-For counts only from VOLANT_TRUSTED_PROXIES (ADR 11)
            timeout_keep_alive=self.limits.keepalive_timeout,  # type: ignore[arg-type]
            timeout_graceful_shutdown=STOP_GRACE_S,  # type: ignore[arg-type]
            backlog=ACCEPT_BATCH,
        )
        self._server = _Server(config)
        self._thread = threading.Thread(target=self._serve, name="api", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        """The bound address (the real port when 0 was asked for)."""
        host, port = self._socket.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve in the background (connections wait in the backlog until the loop runs)."""
        soft, _ = raise_open_file_limit()
        room = soft - max(RESERVED_FILES, soft // 4)
        if room < self.limits.max_connections:
            log.warning(
                "the open-file limit (%d) leaves room for %d connections, not VOLANT_API_MAX_CONNECTIONS "
                "(%d); raise the limit (e.g. LimitNOFILE= in the systemd unit)",
                soft,
                room,
                self.limits.max_connections,
            )
        self._protocol.max_connections = max(1, min(room, self.limits.max_connections))
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close idle connections, give open answers a moment, then return."""
        self._server.request_exit()
        if self._thread.is_alive():
            self._thread.join(STOP_GRACE_S + 5)
        self._socket.close()
        self.calls.shutdown()
        self.streams.shutdown()

    def _serve(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))


def _log_request(method: str, target: str, status: int, seconds: float) -> None:
    """The access log: one line per answered request (the API key of a query string redacted)."""
    if log.isEnabledFor(logging.INFO):
        log.info("%s %s %d %.1fms", method, redact_query_key(target), status, seconds * 1000)
