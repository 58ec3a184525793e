"""``GET /metrics`` and the middleware that counts every API request for it."""

from __future__ import annotations

import time

import falcon
from prometheus_client import CONTENT_TYPE_LATEST

from volant_core.api.openapi.operations import operation
from volant_core.metrics.daemon_metrics import DaemonMetrics

#: Where :class:`RequestMetrics` keeps a request's start in ``req.context``.
_STARTED = "metrics_started"


class RequestMetrics:
    """Counts each answered request by route template, method and status (first in the chain, so
    the requests access control refuses are counted too).
    """

    def __init__(self, metrics: DaemonMetrics) -> None:
        self._metrics = metrics

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Note when the request came in."""
        req.context[_STARTED] = time.perf_counter()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        """Count the answer (its headers: a streamed body may still be on its way)."""
        started = req.context.get(_STARTED)
        if started is not None:
            seconds = time.perf_counter() - started
            self._metrics.observe_request(req.uri_template, req.method, resp.status_code, seconds)


class MetricsResource:
    """``GET /metrics``: the daemon's metrics for Prometheus."""

    def __init__(self, metrics: DaemonMetrics) -> None:
        self._metrics = metrics

    @operation(media_type="text/plain")
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The daemon's metrics, in the Prometheus text format.

        VMs by state and hypervisor; boots, crashes and automatic restarts; boot duration; agent
        proxy requests and latency; API requests by route template, method and status; open event
        subscriptions; the artifact cache's size and hits. Needs the API key unless the client is in
        ``VOLANT_METRICS_ADDRESSES``.
        """
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = self._metrics.exposition()
