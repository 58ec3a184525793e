"""kestrel's HTTP routes, one handler for every transport, and the token gate of its TCP listener."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from . import proxy
from .constants import AGENT_TOKEN_HEADER, REQUEST_ID_HEADER
from .httpio import Handler, Request, Response
from .workload import Workload

#: Request headers meant for kestrel alone, lower-case.
_HOST_HEADERS = frozenset({AGENT_TOKEN_HEADER.lower(), REQUEST_ID_HEADER.lower()})


class AgentApi:
    """Routes ``/v1/health``, ``/v1/manifest``, ``/v1/logs``, ``/v1/shutdown``; proxies other ``/v1/*``.

    ``shutdown`` runs after the 202 answer to ``POST /v1/shutdown`` has been sent.
    """

    def __init__(
        self, manifest: dict[str, Any] | None, workload: Workload, shutdown: Callable[[], None]
    ) -> None:
        self._manifest = manifest
        self._workload = workload
        self._shutdown = shutdown
        self._started = time.monotonic()

    def __call__(self, request: Request) -> Response:
        """Answer one request (the host's own headers, the agent token and the request number, are
        dropped: the workload never sees them).
        """
        request.headers = [(k, v) for k, v in request.headers if k.lower() not in _HOST_HEADERS]
        path = request.path
        if not path.startswith("/v1/"):
            return Response.error(404, "not_found", f"no route {path}; agent routes live under /v1/")
        route = self._routes().get(path[len("/v1/") :])
        if route is None:
            return self._proxy(request, path[len("/v1/") :])
        method, handler = route
        if request.method != method:
            return Response.error(405, "method_not_allowed", f"{path} takes {method}")
        return handler(request)

    def _routes(self) -> dict[str, tuple[str, Callable[[Request], Response]]]:
        return {
            "health": ("GET", self._health),
            "manifest": ("GET", self._manifest_route),
            "logs": ("GET", self._logs),
            "shutdown": ("POST", self._shutdown_route),
        }

    def _health(self, _request: Request) -> Response:
        state = self._workload.live_status()
        body = {
            "status": state.status,
            "reason": state.reason,
            "uptime_s": round(time.monotonic() - self._started, 3),
            "workload_pid": self._workload.pid,
        }
        return Response.json(200 if state.status == "ok" else 503, body)

    def _manifest_route(self, _request: Request) -> Response:
        if self._manifest is None:
            return Response.error(503, "no_manifest", self._workload.status.reason or "no manifest")
        return Response.json(200, self._manifest)

    def _logs(self, request: Request) -> Response:
        tail = parse_qs(request.query).get("tail", [""])[0]
        if tail and not (tail.isascii() and tail.isdigit()):  # "²" is a digit to str.isdigit only
            return Response.error(400, "invalid", f"tail: {tail!r} is not a line count; give a whole number")
        count = int(tail) if tail else None
        return Response.json(200, {"lines": self._workload.logs.tail(count)})

    def _shutdown_route(self, _request: Request) -> Response:
        return Response.json(202, {"status": "shutting_down"}, after=self._shutdown)

    def _proxy(self, request: Request, path: str) -> Response:
        base_url = self._workload.base_url
        if base_url is None:
            return Response.error(503, "no_workload", "the manifest names no workload.base_url to proxy to")
        return proxy.forward(base_url, path, request)


class TokenGate:
    """Passes to ``handler`` only requests that carry the VM's agent ``token`` in
    :data:`~volant_core.agent.constants.AGENT_TOKEN_HEADER`: 401 without it, 403 with another.

    kestrel puts it in front of its TCP listener, which every guest on the same network can reach;
    the virtio-serial and vsock channels reach only the host and need none.
    """

    def __init__(self, handler: Handler, token: str) -> None:
        """Guard ``handler`` with ``token`` (not empty)."""
        if not token:
            raise ValueError("an empty agent token would let every request through")
        self._handler = handler
        self._token = token.encode()

    def __call__(self, request: Request) -> Response:
        """Answer 401/403, or pass ``request`` on."""
        given = request.header(AGENT_TOKEN_HEADER)
        if given is None:
            return Response.error(
                401, "unauthenticated", f"kestrel's TCP listener needs the {AGENT_TOKEN_HEADER} header"
            )
        if not hmac.compare_digest(given.encode("latin-1"), self._token):
            return Response.error(403, "forbidden", f"wrong {AGENT_TOKEN_HEADER}")
        return self._handler(request)
