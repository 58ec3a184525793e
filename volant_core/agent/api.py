"""kestrel's HTTP routes, one handler for every transport."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from . import proxy
from .httpio import Request, Response
from .workload import Workload


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
        """Answer one request."""
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
        count = int(tail) if tail.isdigit() else None
        return Response.json(200, {"lines": self._workload.logs.tail(count)})

    def _shutdown_route(self, _request: Request) -> Response:
        return Response.json(202, {"status": "shutting_down"}, after=self._shutdown)

    def _proxy(self, request: Request, path: str) -> Response:
        base_url = self._workload.base_url
        if base_url is None:
            return Response.error(503, "no_workload", "the manifest names no workload.base_url to proxy to")
        return proxy.forward(base_url, path, request)
