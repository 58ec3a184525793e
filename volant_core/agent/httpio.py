"""A small HTTP/1.1 server core over any byte stream (socket or serial port).

Transports hand :func:`serve_stream` an object with ``recv`` and ``sendall``; it reads requests
(Content-Length or chunked bodies), calls the handler and writes responses with Content-Length,
keeping the connection open unless the client asks otherwise.
"""

from __future__ import annotations

import http
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from .console import say

_MAX_HEAD = 64 * 1024
_MAX_HEADERS = 256
_REQUEST_LINE = re.compile(rb"(GET|HEAD|POST|PUT|DELETE|PATCH|OPTIONS|TRACE) (\S+) (HTTP/1\.[01])$")
_MAX_BODY = 64 * 1024 * 1024


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
    """One parsed request."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""

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
    """One response; ``after`` runs once it has been written (e.g. to power off)."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    after: Callable[[], None] | None = None

    @classmethod
    def json(cls, status: int, payload: Any, after: Callable[[], None] | None = None) -> Response:
        """A JSON response."""
        return cls(status, json.dumps(payload).encode(), [("Content-Type", "application/json")], after)

    @classmethod
    def error(cls, status: int, code: str, message: str) -> Response:
        """A JSON error response: ``{"error": {"code", "message"}}``."""
        return cls.json(status, {"error": {"code": code, "message": message}})

    def encode(self, *, keep_alive: bool, head_only: bool = False) -> bytes:
        """The response on the wire."""
        try:
            reason = http.HTTPStatus(self.status).phrase
        except ValueError:
            reason = "Status"
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() not in ("content-length", "connection")]
        lines.append(f"Content-Length: {len(self.body)}")
        lines.append("Connection: " + ("keep-alive" if keep_alive else "close"))
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + self.body


Handler = Callable[[Request], Response]


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
                raise StreamClosed("connection closed inside the body")
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

    def _chunked(self) -> bytes:
        body = bytearray()
        while size := int(self._line().split(b";")[0].strip() or b"0", 16):
            body += self._take(size)
            self._line()
            if len(body) > _MAX_BODY:
                raise HttpError(413, "request body too large")
        while self._line():
            pass
        return bytes(body)

    def _head(self) -> tuple[re.Match[bytes], list[tuple[str, str]]]:
        """The request line and headers.

        A line ending in a request line starts the request afresh: on a serial port, what a host
        that left mid-request had sent is followed by the next host's request with no boundary in
        between, and this drops that leftover instead of answering the new host with an error.
        """
        start: re.Match[bytes] | None = None
        headers: list[tuple[str, str]] = []
        while True:
            line = self._line()
            if match := _REQUEST_LINE.search(line):
                start, headers = match, []
            elif start is None:
                if line:
                    raise HttpError(400, "malformed request line")
            elif not line:
                return start, headers
            else:
                name, sep, value = line.decode("latin-1").partition(":")
                if not sep:
                    raise HttpError(400, "malformed header line")
                headers.append((name.strip(), value.strip()))
                if len(headers) > _MAX_HEADERS:
                    raise HttpError(431, "too many headers")

    def read(self) -> Request | None:
        """The next request, or None when the stream ends between requests."""
        if not self._buffer and not self._fill():
            return None
        start, headers = self._head()
        method, target, version = (part.decode("latin-1") for part in start.groups())
        request = Request(method, target, version, headers)
        if (request.header("Transfer-Encoding") or "").lower() == "chunked":
            request.body = self._chunked()
        else:
            try:
                length = int(request.header("Content-Length") or 0)
            except ValueError as exc:
                raise HttpError(400, "bad Content-Length") from exc
            if not 0 <= length <= _MAX_BODY:
                raise HttpError(413, "request body too large")
            request.body = self._take(length)
        return request


def _handle(handler: Handler, request: Request) -> Response:
    try:
        return handler(request)
    except Exception as exc:
        say(f"kestrel: handler error on {request.method} {request.target}: {exc!r}")
        return Response.error(500, "internal", f"agent error: {exc}")


def serve_stream(stream: Stream, handler: Handler) -> None:
    """Serve requests from ``stream`` until it ends, the client closes, or a request is malformed."""
    reader = RequestReader(stream)
    while True:
        try:
            request = reader.read()
        except HttpError as exc:
            stream.sendall(Response.error(exc.status, "bad_request", exc.message).encode(keep_alive=False))
            return
        except StreamClosed:
            return
        if request is None:
            return
        response = _handle(handler, request)
        keep_alive = request.keep_alive
        stream.sendall(response.encode(keep_alive=keep_alive, head_only=request.method == "HEAD"))
        if response.after is not None:
            response.after()
        if not keep_alive:
            return
