"""Host side of the guest agent protocol: HTTP/1.1 to kestrel over any :class:`AgentChannel`.

The same client serves every hypervisor and network mode: a channel only has
to hand over a connected stream socket. :meth:`AgentClient.open` sends a
request (its body as it is read) and hands the answer back as an
:class:`AgentStream` whose body arrives chunk by chunk; :meth:`AgentClient.request`
reads that whole answer. Connections are kept alive and reused; a channel that
carries one stream at a time (``exclusive``, e.g. a single serial port) gets
exactly one connection and callers take turns on it, each turn lasting until
the answer's body has been read or the stream closed. A channel's
``request_headers`` (optional, read with ``getattr``: the VM's agent token, see
:class:`~volant_core.channels.TokenChannel`) go with every request and replace
a caller's headers of the same name.
"""

from __future__ import annotations

import functools
import http.client
import json
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any, NoReturn

from volant_core.agent.constants import REQUEST_ID_HEADER
from volant_core.agent.hangup import break_off
from volant_core.errors import AgentAnswerTooLarge, AgentError, AgentTimeout, BusyError
from volant_core.launch import AgentChannel

#: Path kestrel answers 200 on once the workload is healthy (503 before).
HEALTH_PATH = "/v1/health"
#: Pause between two health probes while a guest boots.
HEALTH_POLL_INTERVAL = 0.25
#: Longest wait for one health probe: long enough for a slow guest, short enough to notice a dead VMM.
HEALTH_REQUEST_TIMEOUT = 5.0
#: Most bytes one chunk of a streamed answer holds (a chunk is passed on as soon as it arrives).
CHUNK_SIZE = 64 * 1024
#: Most bytes of an answer read whole (:meth:`AgentClient.request`) by default: 16 MiB.
DEFAULT_MAX_ANSWER = 16 * 1024 * 1024
#: The setting that changes the limit, named in the error an answer over it gives.
MAX_ANSWER_SETTING = "VOLANT_AGENT_MAX_ANSWER"
#: Longest an ordinary request waits for a free lane (or the channel's turn) by default (seconds).
DEFAULT_LANE_WAIT_S = 10.0
#: The setting that changes that wait, named in the 503 a request that waited in vain gets.
LANE_WAIT_SETTING = "VOLANT_AGENT_LANE_WAIT"

#: A request body: bytes, a binary file-like object (read until it ends), or an iterable of chunks.
#: Without a ``Content-Length`` header, a body that is not bytes is sent chunked.
AgentBody = bytes | IO[bytes] | Iterable[bytes] | None

_STALE_CONNECTION_ERRORS = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class AgentResponse:
    """One answer from kestrel; ``headers`` keys are lower-case."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body decoded as JSON; :class:`AgentError` when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise AgentError(
                f"agent answered {self.status} with a body that is not JSON: {self.body[:200]!r}"
            ) from exc


class AgentStream:
    """An answer from kestrel being read: ``status`` and lower-case ``headers`` at once, the body as
    it arrives (iterate for its chunks, or :meth:`read_all`).

    The stream holds its connection, and an exclusive channel's turn, until the body has been read
    to its end (the connection is then kept for the next request) or :meth:`close` is called (a
    connection closed before the end of its body is closed, never reused). Use it as a context
    manager or call :meth:`close`. Reading fails with :class:`AgentTimeout` when no data comes
    for the request's timeout and with :class:`AgentError` when the connection breaks.
    """

    def __init__(
        self,
        answer: http.client.HTTPResponse,
        what: str,
        timeout: float,
        finish: Callable[[bool], None],
        sock: socket.socket,
    ) -> None:
        """Wrap ``answer`` to the request ``what`` (sent with ``timeout``) read from ``sock``;
        ``finish(complete)`` gives the connection back.
        """
        self.status = answer.status
        self.headers: Mapping[str, str] = {name.lower(): value for name, value in answer.getheaders()}
        self._answer = answer
        self._what = what
        self._timeout: float | None = timeout
        self._finish: Callable[[bool], None] | None = finish
        self._sock = sock
        self._ending = threading.Lock()  # between the reader ending the stream and interrupt()
        self._interrupted = False  # its connection was shut down: never kept, even at the body's end
        if answer.length == 0:  # no body at all (HEAD, 204, 304, Content-Length: 0)
            self.close()

    def __repr__(self) -> str:
        return f"AgentStream({self._what}: {self.status}, {'open' if self._finish else 'done'})"

    def __iter__(self) -> Iterator[bytes]:
        """The body's chunks, each as soon as it arrives; the connection is given back after the last."""
        return self.chunks(CHUNK_SIZE)

    def chunks(self, size: int) -> Iterator[bytes]:
        """The body in chunks of at most ``size`` bytes, each as soon as it arrives (what one read
        from the socket gives); the connection is given back after the last.
        """
        while self._finish is not None:
            try:
                chunk = self._next_chunk(size)
            except (OSError, http.client.HTTPException) as exc:
                self._end(complete=False)
                raise _failure(self._what, exc, self._timeout or 0) from exc
            if not chunk:
                self._end(complete=True)
                return
            yield chunk

    def read_all(self, limit: int | None = None) -> bytes:
        """The rest of the body, read to its end; with a ``limit``, :class:`AgentAnswerTooLarge`
        as soon as the body is known to be over ``limit`` bytes: from its ``Content-Length``
        before reading any of it, else after reading at most ``limit`` + 1 bytes (the stream is
        then closed, its connection never reused).
        """
        if limit is None:
            return b"".join(self)
        if self._answer.length is not None and self._answer.length > limit:
            self.close()
            raise self._too_large(limit, f"{self._answer.length} bytes")
        body = bytearray()
        for chunk in self:
            body += chunk
            if len(body) > limit:
                self.close()
                raise self._too_large(limit, "more")
        return bytes(body)

    @property
    def length(self) -> int | None:
        """Bytes of the body not read yet, when the answer gave its ``Content-Length`` (None: unknown)."""
        return self._answer.length

    def take_arrived(self, pause: float) -> bytes:
        """Read now what of the body arrives without a pause longer than ``pause`` seconds, and return
        it: at most all of it (the connection is then given back, as at the end of :meth:`__iter__`).
        What comes after a longer pause is read as usual (iterate), after what this returned. A
        failure to read ends the early reading; the next read meets it and raises as usual.
        """
        taken = bytearray()
        while self._finish is not None:
            try:
                if not self._arrives(pause):
                    break
                chunk = self._next_chunk()
            except (OSError, http.client.HTTPException):
                break
            if not chunk:
                self._end(complete=True)
                break
            taken += chunk
        return bytes(taken)

    def _arrives(self, pause: float) -> bool:
        """Whether the next piece of the body (or its end) is there within ``pause`` seconds: already
        read ahead into the answer's buffer, or waiting on the socket.
        """
        if self._answer.length == 0:
            return True
        self._sock.settimeout(0)  # peek without waiting: the buffer, or what the socket holds now
        try:
            if self._answer.fp.peek(1):
                return True
        finally:
            self._sock.settimeout(self._timeout)
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        return bool(poller.poll(pause * 1000))

    def _too_large(self, limit: int, size: str) -> AgentAnswerTooLarge:
        return AgentAnswerTooLarge(
            f"{self._what}: the answer ({size}) is over the limit of {limit} bytes for an answer read "
            f"whole; raise {MAX_ANSWER_SETTING} to accept it"
        )

    def set_idle_timeout(self, seconds: float | None) -> None:
        """Wait at most ``seconds`` for each further chunk of the body (None: as long as it takes,
        for a stream that ends when its reader goes away: see :meth:`interrupt`). No-op once it ended.
        """
        if self._finish is not None:  # else the connection may already serve another request
            self._timeout = seconds
            self._sock.settimeout(seconds)

    def interrupt(self) -> None:
        """Break the stream off from any thread: a read waiting for the next chunk returns at once,
        the body ends early and its connection is closed, never reused. No-op once it ended.
        """
        with self._ending:
            if self._finish is not None:
                self._interrupted = True
                break_off(self._sock)

    def close(self) -> None:
        """Stop reading: a body not read to its end closes the connection. Idempotent."""
        if self._finish is not None:
            if self._answer.length == 0:
                self._answer.read()  # nothing is left: this marks the answer read to its end
            self._end(complete=self._answer.isclosed())

    def __enter__(self) -> AgentStream:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _next_chunk(self, size: int = CHUNK_SIZE) -> bytes:
        """The next chunk of the body (at most ``size`` bytes); ``b""`` at its end; IncompleteRead
        when it was cut short.
        """
        answer = self._answer
        if answer.length == 0:
            return answer.read()  # b"", and the answer is marked read to its end
        expected = answer.length
        chunk = answer.read1(size)
        if not chunk and expected:
            raise http.client.IncompleteRead(b"", expected)
        return chunk

    def _end(self, *, complete: bool) -> None:
        with self._ending:
            finish, self._finish = self._finish, None
            complete = complete and not self._interrupted
        if finish is not None:
            finish(complete)


class _ChannelConnection(http.client.HTTPConnection):
    """An HTTP connection whose transport is an agent channel instead of TCP."""

    def __init__(self, channel: AgentChannel, timeout: float) -> None:
        super().__init__("kestrel", timeout=timeout)
        self._channel = channel
        self._io_timeout = timeout
        self.used = False

    def connect(self) -> None:
        self.sock = self._channel.connect(self._io_timeout)

    def set_timeout(self, timeout: float) -> None:
        self._io_timeout = timeout
        if self.sock is not None:
            self.sock.settimeout(timeout)


def _failure(what: str, exc: BaseException, timeout: float) -> AgentError:
    """The error for ``exc``, met while talking to the agent about ``what`` with ``timeout``."""
    if isinstance(exc, TimeoutError):
        return AgentTimeout(f"{what}: no answer within {timeout:g} s")
    if isinstance(exc, _STALE_CONNECTION_ERRORS):
        return AgentError(f"{what}: connection lost: {exc}")
    return AgentError(f"{what}: {str(exc) or type(exc).__name__}")


class AgentClient:
    """Talks HTTP/1.1 to kestrel over ``channel``; thread-safe, one instance per channel."""

    def __init__(
        self,
        channel: AgentChannel,
        *,
        max_answer: int = DEFAULT_MAX_ANSWER,
        lane_wait: float = DEFAULT_LANE_WAIT_S,
    ) -> None:
        """Use ``channel`` for every request; no connection is opened until the first one.
        ``max_answer`` bounds the body of an answer :meth:`request` reads whole (in bytes);
        ``lane_wait`` how long an ordinary request waits for a free lane (seconds).
        """
        self.channel = channel
        self.max_answer = max_answer
        self.lane_wait = lane_wait
        self._turn = threading.Lock() if channel.exclusive else None
        lanes = getattr(channel, "lanes", None)
        # Ordinary requests may use all lanes but one: a health probe always finds one (see open()).
        self._ordinary = (
            threading.BoundedSemaphore(lanes - 1) if isinstance(lanes, int) and lanes > 1 else None
        )
        self._channel_headers: Mapping[str, str] = getattr(channel, "request_headers", None) or {}
        self._idle: list[_ChannelConnection] = []
        self._connecting = 0  # callers opening a new connection: they get the next one given back
        self._pool_lock = threading.Lock()

    def open(
        self,
        method: str,
        path: str,
        *,
        body: AgentBody = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30,
        reserved: bool = False,
    ) -> AgentStream:
        """Send one request, its ``body`` as it is read, and return the answer once its head arrived.

        ``timeout`` bounds every wait: for a connection (or the channel's
        turn), for the answer's head, and later for each chunk of its body.
        Close the returned :class:`AgentStream` (or read it to its end) to give
        the connection back. A kept-alive connection the agent closed meanwhile
        is replaced once, transparently, when ``body`` is bytes or None.
        On a channel with a fixed number of ``lanes`` (serial ports), ordinary
        requests share all lanes but one; ``reserved`` requests (health probes)
        may take that last one, so streams held open never starve them.
        An ordinary request waits at most ``lane_wait`` seconds for its lane (or
        an exclusive channel's turn): :class:`BusyError` (503, ``Retry-After``)
        then, however long the streams holding them last.
        Raises :class:`AgentTimeout` when the agent does not answer in time and
        :class:`AgentError` when it cannot be reached.
        """
        what = f"agent {method} {path} via {self.channel.describe()}"
        deadline = time.monotonic() + timeout
        release_turn = self._take_turn(deadline, what, reserved)
        try:
            while True:
                conn = self._checkout(what, max(deadline - time.monotonic(), 0.001))
                sock = conn.sock
                try:
                    answer = self._send(conn, method, path, body, self._headers(headers))
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    replayable = isinstance(body, bytes | None)
                    stale = isinstance(exc, _STALE_CONNECTION_ERRORS) and conn.used and replayable
                    if stale and time.monotonic() < deadline:
                        continue
                    raise _failure(what, exc, timeout) from exc
                except BaseException:
                    conn.close()
                    raise
                finish = functools.partial(self._finish, conn, answer, release_turn)
                return AgentStream(answer, what, timeout, finish, sock)
        except BaseException:
            release_turn()
            raise

    def request(
        self,
        method: str,
        path: str,
        *,
        body: AgentBody = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30,
        reserved: bool = False,
    ) -> AgentResponse:
        """Send one request and read the whole answer (see :meth:`open` for the arguments and errors);
        :class:`AgentAnswerTooLarge` when its body is over :attr:`max_answer` bytes (it is not read
        beyond that: a guest cannot make volantd hold more).
        """
        opened = self.open(method, path, body=body, headers=headers, timeout=timeout, reserved=reserved)
        with opened as stream:
            body_read = stream.read_all(self.max_answer)
            return AgentResponse(status=stream.status, headers=stream.headers, body=body_read)

    def get(self, path: str, *, timeout: float = 30) -> AgentResponse:
        """``GET path``."""
        return self.request("GET", path, timeout=timeout)

    def wait_healthy(self, timeout: float, *, alive: Callable[[], bool]) -> dict[str, Any]:
        """Poll ``GET /v1/health`` until it answers 200 and return its JSON body.

        Raises :class:`AgentError` as soon as ``alive()`` is False (the VMM
        died) or kestrel reports status ``error`` (a workload that cannot start:
        no manifest, no entrypoint, an unusable root filesystem; that never
        changes), and :class:`AgentTimeout` when ``timeout`` seconds pass first.
        """
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            if not alive():
                raise AgentError(f"the VM exited before its agent became healthy ({last})")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AgentTimeout(
                    f"agent on {self.channel.describe()} not healthy within {timeout:g} s ({last})"
                )
            try:
                response = self.request(
                    "GET", HEALTH_PATH, timeout=min(remaining, HEALTH_REQUEST_TIMEOUT), reserved=True
                )
            except AgentError as exc:
                last = exc.message
            else:
                if response.status == 200:
                    body = response.json()
                    return body if isinstance(body, dict) else {"status": body}
                unhealthy = _health_body(response)
                reason = unhealthy.get("reason")
                last = f"health answered {response.status}" + (f": {reason}" if reason else "")
                if unhealthy.get("status") == "error":
                    raise AgentError(f"the agent cannot start the workload ({last})")
            time.sleep(max(0.0, min(HEALTH_POLL_INTERVAL, deadline - time.monotonic())))

    def close(self) -> None:
        """Close the kept-alive connections (the client stays usable)."""
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _headers(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        """The caller's ``headers`` with the channel's own in place of any of the same name."""
        own = {name.lower() for name in self._channel_headers}
        kept = {name: value for name, value in (headers or {}).items() if name.lower() not in own}
        return {**kept, **self._channel_headers}

    def _take_turn(self, deadline: float, what: str, reserved: bool) -> Callable[[], None]:
        """Wait for the turn on an exclusive channel, or for an ordinary request's share of the
        lanes; return what gives it back (a no-op when there was nothing to wait for).
        """
        remaining = max(deadline - time.monotonic(), 0)
        wait = remaining if reserved else min(remaining, self.lane_wait)
        if self._turn is not None:
            if not self._turn.acquire(timeout=wait):
                self._busy(f"{self.channel.describe()} stayed busy with another request", wait, reserved)
            return self._turn.release
        if self._ordinary is None or reserved:
            return _nothing
        if not self._ordinary.acquire(timeout=wait):
            self._busy(f"{what}: every lane but the one kept for health probes stayed busy", wait, reserved)
        return self._ordinary.release

    def _busy(self, problem: str, waited: float, reserved: bool) -> NoReturn:
        """Raise the error of a request that waited ``waited`` seconds in vain for its lane or turn:
        a timeout for a health probe, a 503 to retry later for an ordinary request.
        """
        if reserved:
            raise AgentTimeout(problem)
        raise BusyError(
            f"{problem} for {waited:g} s ({LANE_WAIT_SETTING}); retry later, and close streams you no "
            "longer read"
        )

    def _checkout(self, what: str, timeout: float) -> _ChannelConnection:
        """A kept-alive connection, or a new one connected within ``timeout`` seconds."""
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
            if conn is None:
                self._connecting += 1
        if conn is None:
            conn = _ChannelConnection(self.channel, timeout)
            try:
                conn.connect()
            except OSError as exc:
                conn.close()
                if isinstance(exc, TimeoutError):
                    raise AgentTimeout(f"{what}: cannot connect within {timeout:g} s: {exc}") from exc
                raise AgentError(f"{what}: cannot connect: {exc}") from exc
            finally:
                with self._pool_lock:
                    self._connecting -= 1
        conn.set_timeout(timeout)
        return conn

    def _finish(
        self,
        conn: _ChannelConnection,
        answer: http.client.HTTPResponse,
        release_turn: Callable[[], None],
        complete: bool,
    ) -> None:
        """Give back the connection of a finished stream, then the channel's turn.

        The connection is kept for the next request if its answer was read to
        the end and nobody else waits for one; while another caller is opening
        a new connection (a channel with few lanes may make it wait for this
        one's), it is closed instead, as it is after an answer not read to its end.
        """
        try:
            answer.close()
            keep = complete and conn.sock is not None  # None: the agent asked to close it
            if keep:
                with self._pool_lock:
                    keep = self._connecting == 0
                    if keep:
                        conn.used = True
                        self._idle.append(conn)
            if not keep:
                conn.close()
        finally:
            release_turn()

    @staticmethod
    def _send(
        conn: _ChannelConnection, method: str, path: str, body: AgentBody, headers: Mapping[str, str]
    ) -> http.client.HTTPResponse:
        request_id = uuid.uuid4().hex
        conn.request(method, path, body=body, headers={**headers, REQUEST_ID_HEADER: request_id})
        answer = conn.getresponse()
        while answer.getheader(REQUEST_ID_HEADER, request_id) != request_id:
            answer = _next_answer(conn, answer, method)
        if answer.will_close:
            conn.close()  # the answer holds the socket until its body is read or closed
        return answer


class _KeptOpen:
    """A response's reader whose ``close`` leaves it open, so that what it read ahead stays."""

    def __init__(self, reader: IO[bytes]) -> None:
        self._reader = reader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)

    def close(self) -> None:
        """Keep the reader open (the next answer on the connection is in its buffer)."""


def _next_answer(
    conn: _ChannelConnection, late: http.client.HTTPResponse, method: str
) -> http.client.HTTPResponse:
    """Read off ``late``, the answer to a request given up on earlier (a serial lane keeps kestrel's
    answer for whoever connects next), and return the answer after it on ``conn``.
    """
    if late.will_close:
        late.close()
        raise http.client.RemoteDisconnected("the agent closed the connection after a late answer")
    reader = late.fp
    late.fp = _KeptOpen(reader)  # type: ignore[assignment]
    while late.read(CHUNK_SIZE):  # skipped piece by piece, never held whole
        pass
    answer = http.client.HTTPResponse(conn.sock, method=method)  # type: ignore[arg-type]
    answer.fp.close()
    answer.fp = reader
    answer.begin()
    return answer


def _nothing() -> None:
    """Give back a turn that was never taken."""


def _health_body(response: AgentResponse) -> dict[str, Any]:
    """An unhealthy answer's JSON body, or {} when it is not a JSON object."""
    try:
        body = response.json()
    except AgentError:
        return {}
    return body if isinstance(body, dict) else {}
