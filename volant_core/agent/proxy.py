"""Forwarding a request to the workload's HTTP server."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

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


def forward(base_url: str, path: str, request: Request, timeout: float = PROXY_TIMEOUT_S) -> Response:
    """Send ``request`` (method, query, headers, body) to ``base_url`` + ``path``; 502 on failure."""
    base = urlsplit(base_url)
    target = base.path.rstrip("/") + "/" + path.lstrip("/")
    if request.query:
        target += "?" + request.query
    headers = {k: v for k, v in request.headers if k.lower() not in _HOP_BY_HOP}
    connection = http.client.HTTPConnection(base.hostname or "127.0.0.1", base.port or 80, timeout=timeout)
    try:
        connection.request(request.method, target, body=request.body or None, headers=headers)
        upstream = connection.getresponse()
        body = upstream.read()
    except (OSError, http.client.HTTPException) as exc:
        return Response.error(502, "upstream_error", f"workload at {base_url} failed: {exc}")
    finally:
        connection.close()
    kept = [(k, v) for k, v in upstream.getheaders() if k.lower() not in _HOP_BY_HOP]
    return Response(upstream.status, body, kept)
