"""A small HTTP/1.1 server core over any byte stream (socket or serial port).

Transports hand :func:`serve_stream` an object with ``recv`` and ``sendall``; it reads requests
(Content-Length or chunked bodies, which a handler may read as they arrive), calls the handler and
writes its response, with Content-Length, or chunk by chunk as the handler's stream produces it,
keeping the connection open unless the client asks otherwise.
"""

from __future__ import annotations

import contextlib
import http
import json
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from string import hexdigits
from typing import Any, Protocol
from urllib.parse import urlsplit

from .console import say
from .constants import REQUEST_ID_HEADER
from .hangup import HangupWatch

_MAX_HEAD = 64 * 1024
_MAX_HEADERS = 256
#: A whole request line (matched with ``fullmatch``: a line that merely ends in one is not one).
_REQUEST_LINE = re.compile(rb"(GET|HEAD|POST|PUT|DELETE|PATCH|OPTIONS|TRACE) ([\x21-\x7e]+) (HTTP/1\.[01])")
#: A header line: a token, the colon right after it, the value (RFC 9110 section 5.1, 5.5).
_HEADER_LINE = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\x00\r\n]*?)[ \t]*")
#: The only transfer coding kestrel reads.
_CHUNKED = "chunked"
_HEX_DIGITS = hexdigits.encode()
_MAX_BODY = 64 * 1024 * 1024
#: Longest request number echoed (the host sends 32 hex digits).
_REQUEST_ID_MAX = 64
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


class Stream(Protocol):
    """A connected byte stream; ``recv`` returns ``b""`` at end of stream."""

    def recv(self, size: int, /) -> bytes:
        """Up to ``size`` bytes, blocking until at least one is available."""
        ...

    def sendall(self, data: bytes, /) -> None:
        """Write all of ``data`` or raise :class:`OSError`."""
        ...


class StreamClosed(Exception):
    """The peer went away in the middle of a request: nobody is left to answer."""


class HttpError(Exception):
    """A malformed request: answered with ``status`` and the connection is closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Request:
    """One parsed request; its body is read from the stream as the handler consumes it.

    ``chunks`` yields the body as it arrives (once); :attr:`body` reads all of it.
    ``length`` is the Content-Length, None for a chunked body.
    """

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    chunks: Iterator[bytes] = field(default_factory=lambda: iter(()), repr=False)
    length: int | None = 0
    _body: bytes | None = field(default=None, repr=False)

    @property
    def body(self) -> bytes:
        """The whole body, read on first use; 413 when it is over the in-memory limit."""
        if self._body is None:
            data = bytearray()
            for chunk in self.chunks:
                data += chunk
                if len(data) > _MAX_BODY:
                    raise HttpError(413, "request body too large")
            self._body = bytes(data)
        return self._body

    @property
    def has_body(self) -> bool:
        """Whether the request carries a body (chunked, or a Content-Length over 0)."""
        return self.length != 0

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    @property
    def path(self) -> str:
        """The path part of the target."""
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        """The query string of the target, without ``?``."""
        return urlsplit(self.target).query

    @property
    def keep_alive(self) -> bool:
        """Whether the client wants the connection kept open after this request."""
        connection = (self.header("Connection") or "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


@dataclass
class Response:
    """One response; ``after`` runs once it has been written (e.g. to power off).

    With a ``stream``, the body is what the stream yields, each chunk sent as soon as it is
    produced (``length`` is its size when known); ``body`` is then unused. ``interrupt``, if
    given, breaks the stream off from another thread (called when the client hangs up while the
    stream waits for its next chunk).
    """

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    after: Callable[[], None] | None = None
    stream: Generator[bytes, None, None] | None = None
    length: int | None = None
    interrupt: Callable[[], None] | None = None

    @classmethod
    def json(cls, status: int, payload: Any, after: Callable[[], None] | None = None) -> Response:
        """A JSON response."""
        return cls(status, json.dumps(payload).encode(), [("Content-Type", "application/json")], after)

    @classmethod
    def error(cls, status: int, code: str, message: str) -> Response:
        """A JSON error response: ``{"error": {"code", "message"}}``."""
        return cls.json(status, {"error": {"code": code, "message": message}})

    def head(self, *, keep_alive: bool, framing: str | None) -> bytes:
        """Status line and headers; ``framing`` is the header saying where the body ends (None: at
        the end of the connection).
        """
        try:
            reason = http.HTTPStatus(self.status).phrase
        except ValueError:
            reason = "Status"
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() not in _FRAMING_HEADERS]
        if framing is not None:
            lines.append(framing)
        lines.append("Connection: " + ("keep-alive" if keep_alive else "close"))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def encode(self, *, keep_alive: bool, head_only: bool = False) -> bytes:
        """The response (not streamed) on the wire."""
        head = self.head(keep_alive=keep_alive, framing=f"Content-Length: {len(self.body)}")
        return head if head_only else head + self.body


Handler = Callable[[Request], Response]
#: Makes the watch of a transport's client connection: ``watch(on_hangup)`` (see :class:`HangupWatch`).
WatchFactory = Callable[[Callable[[], None]], HangupWatch]


class RequestReader:
    """Reads successive requests from one stream."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    def _fill(self) -> bool:
        chunk = self._stream.recv(65536)
        self._buffer += chunk
        return bool(chunk)

    def _take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if not self._fill():
                raise StreamClosed("connection closed inside the request")
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > _MAX_HEAD:
                raise HttpError(431, "request head too large")
            if not self._fill():
                raise StreamClosed("connection closed inside the request")
        return self._take(end + 2)[:-2]

    def _counted(self, size: int) -> Iterator[bytes]:
        """The next ``size`` bytes, as they arrive."""
        while size:
            if not self._buffer and not self._fill():
                raise StreamClosed("connection closed inside the body")
            chunk = bytes(self._buffer[:size])
            del self._buffer[: len(chunk)]
            size -= len(chunk)
            yield chunk

    def _chunked(self) -> Iterator[bytes]:
        """A chunked body, decoded, as it arrives; 400 for a size that is not hex digits or data
        not followed by its CRLF.
        """
        while True:
            size_field = self._line().split(b";")[0].rstrip(b" \t")
            if not size_field or size_field.strip(_HEX_DIGITS):
                raise HttpError(400, "bad chunk size")
            size = int(size_field, 16)
            if not size:
                break
            yield from self._counted(size)
            if self._line():
                raise HttpError(400, "chunk data longer than its size")
        while self._line():
            pass

    def _head(self) -> tuple[re.Match[bytes], list[tuple[str, str]]]:
        """The request line and headers, parsed strictly: the request line is a whole line, and a
        header line is a name (a token) with the colon right after it: no folded line, no
        whitespace before a name or the colon, no CR, LF or NUL in a value.

        A whole request line among the headers starts the request afresh: on a serial port, what
        a host that left mid-request had sent is followed by the next host's request, and this
        drops that leftover instead of answering the new host with an error (a header cannot be
        one: a proxy in front, volantd, refuses CR and LF in header values).
        """
        start: re.Match[bytes] | None = None
        headers: list[tuple[str, str]] = []
        while True:
            line = self._line()
            if match := _REQUEST_LINE.fullmatch(line):
                start, headers = match, []
            elif start is None:
                if line:
                    raise HttpError(400, "malformed request line")
            elif not line:
                return start, headers
            else:
                header = _HEADER_LINE.fullmatch(line.decode("latin-1"))
                if header is None:
                    raise HttpError(400, "malformed header line (folded, or whitespace around the name)")
                headers.append((header[1], header[2]))
                if len(headers) > _MAX_HEADERS:
                    raise HttpError(431, "too many headers")

    def read(self) -> Request | None:
        """The head of the next request, its body to be read through ``chunks`` (before the next
        request is read); None when the stream ends between requests.

        The body's framing must be unambiguous: 400 for both ``Transfer-Encoding`` and
        ``Content-Length``, a transfer coding other than ``chunked``, or a ``Content-Length``
        that is not one number.
        """
        if not self._buffer and not self._fill():
            return None
        start, headers = self._head()
        method, target, version = (part.decode("latin-1") for part in start.groups())
        request = Request(method, target, version, headers)
        codings = [v for k, v in headers if k.lower() == "transfer-encoding"]
        lengths = [v for k, v in headers if k.lower() == "content-length"]
        if codings and lengths:
            raise HttpError(400, "both Transfer-Encoding and Content-Length")
        if codings:
            if [coding.lower() for coding in codings] != [_CHUNKED]:
                raise HttpError(400, "the only Transfer-Encoding read is a single chunked")
            request.length, request.chunks = None, self._chunked()
        else:
            if len(lengths) > 1 or (lengths and not (lengths[0].isascii() and lengths[0].isdigit())):
                raise HttpError(400, "bad Content-Length")
            length = int(lengths[0]) if lengths else 0
            request.length, request.chunks = length, self._counted(length)
        return request


def _handle(handler: Handler, request: Request) -> Response:
    try:
        return handler(request)
    except (HttpError, StreamClosed):
        raise  # the request itself is at fault, or nobody is left to answer
    except Exception as exc:
        say(f"kestrel: handler error on {request.method} {request.target}: {exc!r}")
        return Response.error(500, "internal", f"agent error: {exc}")


def _echo_request_id(request_id: str | None, response: Response) -> None:
    """Answer with the request's number (:data:`REQUEST_ID_HEADER`) when it is a plausible one (hex,
    short), and never with one the workload's answer carries.
    """
    name = REQUEST_ID_HEADER.lower()
    response.headers = [(k, v) for k, v in response.headers if k.lower() != name]
    if request_id and len(request_id) <= _REQUEST_ID_MAX and all(c in hexdigits for c in request_id):
        response.headers.append((REQUEST_ID_HEADER, request_id))


def _send_stream(
    stream: Stream, request: Request, response: Response, keep_alive: bool, watch: WatchFactory | None
) -> bool:
    """Write a streamed response, each chunk as it comes; whether the connection may stay open.

    The body is framed by its length when known, else chunked (HTTP/1.1) or ended by closing
    the connection (HTTP/1.0). While it waits for the next chunk, the client's connection is
    watched (``watch``): a client that hangs up breaks the response's stream off
    (``ConnectionError``), which frees what it holds (the workload's connection) at once.
    """
    assert response.stream is not None
    with contextlib.closing(response.stream) as chunks:
        chunked = response.length is None and request.version != "HTTP/1.0"
        if response.length is not None:
            framing: str | None = f"Content-Length: {response.length}"
        else:
            framing = "Transfer-Encoding: chunked" if chunked else None
            keep_alive = keep_alive and chunked
        stream.sendall(response.head(keep_alive=keep_alive, framing=framing))
        if request.method == "HEAD":
            return keep_alive
        watching = watch(response.interrupt) if watch and response.interrupt else None
        with watching or contextlib.nullcontext():
            try:
                for chunk in chunks:
                    if chunk:
                        stream.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            except ConnectionError:
                if not (watching and watching.fired):
                    raise
        if watching and watching.fired:
            raise ConnectionError("the client hung up during a streamed answer")
        if chunked:
            stream.sendall(b"0\r\n\r\n")
    return keep_alive


def serve_stream(stream: Stream, handler: Handler, watch: WatchFactory | None = None) -> None:
    """Serve requests from ``stream`` until it ends, the client closes, or a request is malformed.

    ``watch`` makes the watch of ``stream`` for a client that hangs up during a streamed answer
    (None: such an answer is only broken off when a write to the client fails).
    """
    reader = RequestReader(stream)
    while True:
        try:
            request = reader.read()
            if request is None:
                return
            request_id = request.header(REQUEST_ID_HEADER)  # before the handler drops it
            response = _handle(handler, request)
            for _unread in request.chunks:  # what the handler left of the body
                pass
            _echo_request_id(request_id, response)
        except HttpError as exc:
            stream.sendall(Response.error(exc.status, "bad_request", exc.message).encode(keep_alive=False))
            return
        except StreamClosed:
            return
        keep_alive = request.keep_alive
        if response.stream is None:
            stream.sendall(response.encode(keep_alive=keep_alive, head_only=request.method == "HEAD"))
        else:
            keep_alive = _send_stream(stream, request, response, keep_alive, watch)
        if response.after is not None:
            response.after()
        if not keep_alive:
            return
