"""Forwarding a request to the workload's HTTP server, both bodies streamed as they come."""

from __future__ import annotations

import functools
import http.client
from collections.abc import Generator
from urllib.parse import urlsplit

from .hangup import break_off
from .httpio import Request, Response

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
PROXY_TIMEOUT_S = 60.0
#: Most bytes relayed at once from the workload's answer (a chunk goes out as soon as it arrives).
_CHUNK = 64 * 1024
#: Answers that never have a body, whatever their headers say.
_BODILESS = frozenset({204, 304})


def forward(base_url: str, path: str, request: Request, timeout: float = PROXY_TIMEOUT_S) -> Response:
    """Send ``request`` (method, query, headers, body as it arrives) to ``base_url`` + ``path``.

    The answer's body is relayed as the workload writes it (a streamed :class:`Response`
    whose ``interrupt`` closes the workload's connection); 502 when the workload cannot be
    reached or fails before its answer's head. ``timeout`` bounds each wait on the workload
    up to the answer's head; the body may pause for as long as the workload likes (the
    transport breaks the stream off when the client hangs up).
    """
    base = urlsplit(base_url)
    target = base.path.rstrip("/") + "/" + path.lstrip("/")
    if request.query:
        target += "?" + request.query
    headers = {k: v for k, v in request.headers if k.lower() not in _HOP_BY_HOP}
    if request.length:
        headers["Content-Length"] = str(request.length)  # else a body is sent chunked
    connection = http.client.HTTPConnection(base.hostname or "127.0.0.1", base.port or 80, timeout=timeout)
    try:
        connection.connect()
        sock = connection.sock
        connection.request(
            request.method, target, body=request.chunks if request.has_body else None, headers=headers
        )
        upstream = connection.getresponse()
        kept = [(k, v) for k, v in upstream.getheaders() if k.lower() not in _HOP_BY_HOP]
        if request.method == "HEAD" or upstream.status in _BODILESS:
            upstream.read()
            connection.close()
            return Response(upstream.status, b"", kept)
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        return Response.error(502, "upstream_error", f"workload at {base_url} failed: {exc}")
    except BaseException:
        connection.close()
        raise
    sock.settimeout(None)
    return Response(
        upstream.status,
        headers=kept,
        stream=_relay(base_url, connection, upstream),
        length=upstream.length,
        interrupt=functools.partial(break_off, sock),
    )


def _relay(
    base_url: str, connection: http.client.HTTPConnection, upstream: http.client.HTTPResponse
) -> Generator[bytes, None, None]:
    """The workload's answer body, chunk by chunk as it arrives; the connection is closed at the end.

    Raises ``ConnectionError`` when the workload breaks off its answer: the client's connection
    has to end too, as the answer can no longer be completed.
    """
    try:
        while True:
            expected = upstream.length
            chunk = upstream.read1(_CHUNK) if expected != 0 else b""
            if not chunk:
                if expected:
                    raise http.client.IncompleteRead(b"", expected)
                return
            yield chunk
    except (OSError, http.client.HTTPException) as exc:
        raise ConnectionError(f"workload at {base_url} broke off its answer: {exc!r}") from exc
    finally:
        connection.close()
