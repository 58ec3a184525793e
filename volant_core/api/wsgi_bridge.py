"""The Falcon WSGI app as an ASGI app: blocking work in threads, sockets on the event loop.

uvicorn owns the connections (parsing, keep-alive, timeouts, WebSocket framing)
on one asyncio loop; every request's WSGI call runs in a thread of the *calls*
pool, and the chunks of a streamed answer (SSE, the agent proxy, ``logs?follow``)
and WebSocket sessions are read in threads of a separate *streams* pool, so long
streams never take the threads quick requests need (ADR 24).

What the app gets beyond plain WSGI:

* :data:`RAW_TARGET_KEY`: the request target exactly as sent (``%2F`` kept);
* :data:`HANGUP_KEY`: a :class:`ClientHangup` that calls back when the client
  goes away while its answer is still being produced;
* :data:`~volant_core.api.upgrade.UPGRADE_KEY` on WebSocket openings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Coroutine, Iterable, Iterator, MutableMapping
from concurrent.futures import Executor
from typing import Any, TypeVar

import falcon
from websockets.exceptions import ConnectionClosed

from volant_core.api.upgrade import UPGRADE_KEY, WebSocketUpgrade

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Coroutine[Any, Any, Message]]
Send = Callable[[Message], Coroutine[Any, Any, None]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: Called once a request is answered: method, target (as sent), status, seconds taken.
RequestDone = Callable[[str, str, int, float], None]

#: WSGI environ key holding the request target exactly as the client sent it (percent-encoding
#: kept), as uWSGI and mod_wsgi name it: ``PATH_INFO`` is decoded, so ``%2F`` there reads as ``/``.
RAW_TARGET_KEY = "REQUEST_URI"
#: WSGI environ key of the request's :class:`ClientHangup`.
HANGUP_KEY = "volant.hangup"

T = TypeVar("T")


async def in_thread(pool: Executor, call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` run in a thread of ``pool``; its result (or its exception) on the loop.

    What ``loop.run_in_executor`` does, with one hand-back to the loop and no futures chained
    both ways (every request crosses to a pool thread and back at least once). When the waiting
    task is cancelled, the call still runs to its end in its thread; its result is dropped.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            result = call(*args)
        except BaseException as error:  # handed to the waiter, as run_in_executor does
            loop.call_soon_threadsafe(_settle, done, None, error)
        else:
            loop.call_soon_threadsafe(_settle, done, result, None)

    pool.submit(run)
    return await done


def _settle(done: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Give a call's outcome to its waiter, unless it stopped waiting (cancelled)."""
    if done.cancelled():
        return
    if error is None:
        done.set_result(result)
    else:
        done.set_exception(error)


class ClientHangup:
    """Tells a resource that its client went away while the answer was still being produced."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.happened = False  #: whether the client has gone

    @contextlib.contextmanager
    def watch(self, on_hangup: Callable[[], None]) -> Iterator[None]:
        """Call ``on_hangup`` (once, from another thread) if the client goes away inside the block."""
        with self._lock:
            gone = self.happened
            if not gone:
                self._callbacks.append(on_hangup)
        if gone:
            on_hangup()
        try:
            yield
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._callbacks.remove(on_hangup)

    def fire(self) -> None:
        """The client went away: call every watcher."""
        with self._lock:
            self.happened = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a hang-up callback failed")


class _RequestBody:
    """``wsgi.input``: the request body, read from the event loop as the app asks for it.

    A client that sends nothing for ``timeout`` seconds while the app waits gets a 408.
    """

    def __init__(self, wanted: Callable[[], object], timeout: float) -> None:
        self._chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._wanted = wanted
        self._timeout = timeout
        self._buffer = bytearray()
        self._ended = False

    def put(self, chunk: bytes | None) -> None:
        """Hand over a chunk received (None: the body ended, or the client left)."""
        self._chunks.put(chunk)

    def _fill(self) -> bool:
        """Wait for the next chunk; False at the end of the body."""
        if self._ended:
            return False
        if self._chunks.empty():  # a chunk read ahead needs no word to the loop
            self._wanted()
        try:
            chunk = self._chunks.get(timeout=self._timeout)
        except queue.Empty:
            raise falcon.HTTPError(
                falcon.HTTP_408, description=f"the client sent no request body for {self._timeout:g} s"
            ) from None
        if chunk is None:
            self._ended = True
            return False
        self._buffer += chunk
        return True

    def read(self, size: int = -1) -> bytes:
        """``size`` bytes (fewer at the end of the body; all that is left when negative)."""
        while (size < 0 or len(self._buffer) < size) and self._fill():
            pass
        count = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def readline(self, size: int = -1) -> bytes:
        """One line (up to ``size`` bytes)."""
        while b"\n" not in self._buffer and (size < 0 or len(self._buffer) < size) and self._fill():
            pass
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        if size >= 0:
            end = min(end, size)
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        """Every line left."""
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


class _Exchange:
    """One HTTP request on the loop: feeds the body to the app and notices the client leaving.

    Its receiving task starts when the app first asks for the body or :meth:`read_on` is called:
    a request answered whole without reading a body costs no task.
    """

    def __init__(self, receive: Receive, body_timeout: float) -> None:
        self._receive = receive
        self._loop = asyncio.get_running_loop()
        self._wanted = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self.body = _RequestBody(lambda: self._loop.call_soon_threadsafe(self._want), body_timeout)
        self.hangup = ClientHangup()

    def read_on(self) -> None:
        """Receive the client's next message now: before the app runs, the body's first chunk
        (it mostly came with the head, and the app then finds it without asking the loop); once
        the app has answered, whatever comes (the rest of the body, or the hang-up).
        """
        self._want()

    def close(self) -> None:
        """Stop receiving (the answer is over)."""
        if self._pump is not None:
            self._pump.cancel()

    def _want(self) -> None:
        self._wanted.set()
        if self._pump is None:
            self._pump = self._loop.create_task(self._pump_messages())

    async def _pump_messages(self) -> None:
        """Receive the body when the app wants it, then wait for the client to leave."""
        body_done = False
        while True:
            await self._wanted.wait()
            if not body_done:
                self._wanted.clear()
            message = await self._receive()
            if message["type"] == "http.request":
                if not body_done:
                    self.body.put(message.get("body", b""))
                    body_done = not message.get("more_body", False)
                    if body_done:
                        self.body.put(None)
                        self._wanted.set()
                continue
            if not body_done:
                self.body.put(None)
            self.hangup.fire()
            return


def _has_body(environ: dict[str, Any]) -> bool:
    """Whether the request comes with a body (a ``Content-Length`` over 0, or a transfer coding)."""
    return environ.get("CONTENT_LENGTH", "0") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in environ


def wsgi_environ(scope: Scope, body: object) -> dict[str, Any]:
    """The WSGI environ of an ASGI ``http`` or ``websocket`` scope (``body`` is ``wsgi.input``)."""
    raw_path = bytes(scope.get("raw_path") or scope["path"].encode())
    query = bytes(scope.get("query_string", b""))
    target = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    server = scope.get("server") or ("localhost", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope.get("method", "GET"),
        "SCRIPT_NAME": "",
        "PATH_INFO": urllib.parse.unquote_to_bytes(raw_path).decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if scope.get("scheme") in ("https", "wss") else "http",
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        RAW_TARGET_KEY: target,
    }
    if client := scope.get("client"):
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(client[0]), str(client[1])
    for raw_name, raw_value in scope["headers"]:
        if b"_" in raw_name:  # X_Forwarded_For would pass for X-Forwarded-For: dropped, as wsgiref does
            continue
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + name
        value = raw_value.decode("latin-1")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


class _Answer:
    """What the app answered: status, headers, and the body whole or as an iterator."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes | _Stream):
        self.status = status
        self.headers = headers
        self.body = body


def call_app(app: WsgiApp, environ: dict[str, Any]) -> _Answer:
    """Call the WSGI ``app``; a list answer (every non-streamed Falcon answer) is joined at once."""
    head: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and head:
            raise exc_info[1].with_traceback(exc_info[2])
        head[:] = [status, headers]
        return _no_write

    result = app(environ, start_response)
    if isinstance(result, list | tuple):
        try:
            body: bytes | _Stream = b"".join(result)
        finally:
            _close(result)
    else:
        chunks = iter(result)
        first = None if head else next(chunks, b"")  # start_response may wait for the first chunk
        body = _Stream(result, chunks, first)
    status, headers = head
    encoded = [(key.encode("latin-1"), value.encode("latin-1")) for key, value in headers]
    if isinstance(body, _Stream):
        lengths = [value for key, value in headers if key.lower() == "content-length"]
        body.length = int(lengths[0]) if lengths and lengths[0].isdigit() else None
    return _Answer(int(status.split(" ", 1)[0]), encoded, body)


def _no_write(data: bytes) -> None:
    raise NotImplementedError("the write() callable of WSGI is not offered: return the body")


def _close(result: object) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


class _Stream:
    """A streamed answer's body, read in stream threads: ``next_chunk()``, ``close()`` at the end.

    The app's iterable is closed by the call that finds its end; with ``length`` (its
    ``Content-Length``) that is the call that reads its last byte, so a short answer costs no
    extra hand-over to learn that nothing follows.
    """

    def __init__(self, result: Iterable[bytes], chunks: Iterator[bytes], first: bytes | None) -> None:
        self._result = result
        self._chunks = chunks
        self._first = first
        self.length: int | None = None  #: the body's Content-Length, when the app gave one
        self._sent = 0
        self.ended = False  #: whether the body was read to its end (and closed)

    def next_chunk(self) -> bytes | None:
        """The next chunk; None at the end (the iterable is then closed)."""
        chunk: bytes | None
        if self._first is not None:
            chunk, self._first = self._first, None
        else:
            chunk = next(self._chunks, None)
        if chunk is None or (self.length is not None and self._sent + len(chunk) >= self.length):
            if chunk is not None:
                self._sent += len(chunk)
                if next(self._chunks, None) is not None:  # more than its length: cut, as a client would
                    log.warning("a streamed answer went on past its Content-Length; cut there")
            self.close()
            return chunk
        self._sent += len(chunk)
        return chunk

    def close(self) -> None:
        """End the app's iterable (``close()`` of WSGI), once."""
        if not self.ended:
            self.ended = True
            _close(self._result)


class _BlockingWebSocket:
    """An accepted ASGI WebSocket, used from a thread as a blocking :class:`WebSocket`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, receive: Receive, send: Send) -> None:
        self._loop = loop
        self._receive = receive
        self._send = send
        self._closed = False

    def _call(self, message: Message) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._send(message), self._loop).result()
        except (OSError, RuntimeError) as error:  # uvicorn's ClientDisconnected is an OSError
            self._closed = True
            raise ConnectionClosed(None, None) from error

    def send(self, message: bytes | str) -> None:
        """Send one message; ConnectionClosed once closed."""
        if self._closed:
            raise ConnectionClosed(None, None)
        key = "bytes" if isinstance(message, bytes) else "text"
        self._call({"type": "websocket.send", key: message})

    def __iter__(self) -> Iterator[bytes | str]:
        while not self._closed:
            message: Message = asyncio.run_coroutine_threadsafe(self._receive(), self._loop).result()
            if message["type"] != "websocket.receive":
                self._closed = True
                return
            yield message["bytes"] if message.get("bytes") is not None else message.get("text", "")

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake, once."""
        if not self._closed:
            with contextlib.suppress(ConnectionClosed):
                self._call({"type": "websocket.close", "code": code, "reason": reason})
            self._closed = True


class WsgiBridge:
    """The ASGI application uvicorn serves: ``app`` (WSGI) with calls and streams in thread pools."""

    def __init__(
        self,
        app: WsgiApp,
        *,
        calls: Executor,
        streams: Executor,
        body_timeout: float,
        on_done: RequestDone | None = None,
        on_loop: Callable[[str], bool] | None = None,
    ) -> None:
        """Run ``app`` in ``calls``, streamed bodies and WebSocket sessions in ``streams``. A
        request without a body whose path ``on_loop`` accepts (the app never blocks there) is
        answered on the event loop itself: no thread can be waited for, and none is.
        """
        self.app = app
        self.on_loop = on_loop
        self.calls = calls
        self.streams = streams
        self.body_timeout = body_timeout
        self.on_done = on_done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        exchange = _Exchange(receive, self.body_timeout)
        environ = wsgi_environ(scope, exchange.body)
        environ[HANGUP_KEY] = exchange.hangup
        status = 500
        try:
            has_body = _has_body(environ)
            if not has_body and self.on_loop is not None and self.on_loop(environ["PATH_INFO"]):
                answer = call_app(self.app, environ)
            else:
                if has_body and environ.get("HTTP_EXPECT", "").lower() != "100-continue":
                    exchange.read_on()  # a client that asked to be told goes on when the app reads
                answer = await in_thread(self.calls, call_app, self.app, environ)
            status = answer.status
            streamed = not isinstance(answer.body, bytes)
            if streamed or has_body:
                exchange.read_on()  # a stream watches for the hang-up; a body's rest is read off
            await send({"type": "http.response.start", "status": status, "headers": answer.headers})
            if isinstance(answer.body, bytes):
                await send({"type": "http.response.body", "body": answer.body})
            else:
                await self._stream(answer.body, exchange.hangup, send)
        finally:
            exchange.close()
            if self.on_done is not None:
                elapsed = time.perf_counter() - started
                self.on_done(environ["REQUEST_METHOD"], environ[RAW_TARGET_KEY], status, elapsed)

    async def _stream(self, stream: _Stream, hangup: ClientHangup, send: Send) -> None:
        try:
            while not hangup.happened:
                chunk = await in_thread(self.streams, stream.next_chunk)
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": not stream.ended})
                if stream.ended:
                    if not chunk:
                        await send({"type": "http.response.body", "body": b""})
                    return
        finally:
            if not stream.ended:
                await in_thread(self.streams, stream.close)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        environ = wsgi_environ(scope, _RequestBody(lambda: None, self.body_timeout))
        environ["wsgi.input"].put(None)  # an opening has no body
        if (await receive())["type"] != "websocket.connect":  # the first message of every WebSocket
            return
        headers = [(key.decode("latin-1"), value.decode("latin-1")) for key, value in scope["headers"]]
        upgrade = WebSocketUpgrade(environ[RAW_TARGET_KEY], headers)
        environ[UPGRADE_KEY] = upgrade
        status = 500
        try:
            answer = await in_thread(self.calls, call_app, self.app, environ)
            if upgrade.session is None:  # refused: the app's answer, as plain HTTP
                status = answer.status
                await send(
                    {"type": "websocket.http.response.start", "status": status, "headers": answer.headers}
                )
                body = answer.body if isinstance(answer.body, bytes) else b""  # errors are never streamed
                await send({"type": "websocket.http.response.body", "body": body})
                return
            status = 101
            try:
                await send({"type": "websocket.accept"})
            except BaseException:
                upgrade.cleanup()
                raise
            await in_thread(self.streams, upgrade.run, _BlockingWebSocket(loop, receive, send))
        finally:
            if self.on_done is not None:
                self.on_done("GET", environ[RAW_TARGET_KEY], status, time.perf_counter() - started)
