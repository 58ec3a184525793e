"""The Falcon application: ``create_app(deps)`` wires resources to collaborators.

Nothing here reaches for globals: the orchestrator, the runtime catalog and
the plugin host are passed in, so tests and embedders build the app around
whatever they constructed.
"""

from __future__ import annotations

from dataclasses import dataclass

import falcon

from volant_core.api import errors
from volant_core.api.configs import VMConfigResource
from volant_core.api.console import VMConsole
from volant_core.api.deployments import DeploymentCollection, DeploymentItem
from volant_core.api.events import EventStream
from volant_core.api.images import ImageCache
from volant_core.api.metrics import MetricsResource, RequestMetrics
from volant_core.api.openapi.generator import DOCUMENT_PATH, OpenApiDocument
from volant_core.api.openapi.routes import RoutedApp, mount_plugin_routes
from volant_core.api.runtimes import RuntimeCollection, RuntimeItem
from volant_core.api.security import METRICS_PATH, security_middleware
from volant_core.api.system import (
    Health,
    SystemInfoResource,
    SystemPlugins,
    SystemStatusResource,
    SystemSummaryResource,
)
from volant_core.api.vms import AgentProxy, VMCollection, VMItem
from volant_core.api.workload import VMAction, VMLogs, VMOpenAPI
from volant_core.metrics.daemon_metrics import DaemonMetrics
from volant_core.orchestrator import Orchestrator
from volant_core.orchestrator.deployments import Deployments
from volant_core.plugins import Plugins
from volant_core.runtimes import RuntimeCatalog
from volant_core.settings import Settings

#: Largest request body accepted (bytes); bigger ones get 413. Not for resources that stream
#: the body on as they read it (``streams_request_body``: the agent proxy).
MAX_BODY_BYTES = 4 * 1024 * 1024
#: The route of the agent proxy (its requests are counted apart in the metrics too).
AGENT_PROXY_ROUTE = "/api/v1/vms/{name}/agent/{path:path}"


@dataclass(frozen=True)
class ApiDeps:
    """What the API needs from the daemon."""

    orchestrator: Orchestrator
    catalog: RuntimeCatalog
    plugins: Plugins
    deployments: Deployments
    settings: Settings
    metrics: DaemonMetrics


class _BodyLimit:
    """Refuse bodies over :data:`MAX_BODY_BYTES` before any resource reads them, unless the
    resource says it streams them (a true ``streams_request_body`` attribute).
    """

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, object]
    ) -> None:
        if getattr(resource, "streams_request_body", False):
            return
        if (req.content_length or 0) > MAX_BODY_BYTES:
            raise falcon.HTTPContentTooLarge(
                description=f"request body over {MAX_BODY_BYTES} bytes; send a smaller document"
            )


def create_app(deps: ApiDeps) -> RoutedApp:
    """Build the WSGI application for ``deps``: the core routes, ``/openapi``, then plugin routes."""
    app = RoutedApp(
        middleware=[RequestMetrics(deps.metrics), *security_middleware(deps.settings), _BodyLimit()]
    )
    errors.install(app)
    vm_item = VMItem(deps.orchestrator)
    runtime_item = RuntimeItem(deps.catalog)
    app.add_route("/healthz", Health())
    app.add_route(METRICS_PATH, MetricsResource(deps.metrics))
    app.add_route("/api/v1/system/plugins", SystemPlugins(deps.plugins))
    app.add_route("/api/v1/system/status", SystemStatusResource(deps.orchestrator))
    app.add_route("/api/v1/system/info", SystemInfoResource(deps.orchestrator, deps.plugins))
    app.add_route("/api/v1/system/summary", SystemSummaryResource(deps.orchestrator, deps.catalog))
    keys = deps.orchestrator.store.idempotency
    app.add_route("/api/v1/vms", VMCollection(deps.orchestrator, keys))
    app.add_route("/api/v1/vms/{name}", vm_item)
    for action in ("start", "stop", "restart"):
        app.add_route(f"/api/v1/vms/{{name}}/{action}", vm_item, suffix=action)
    vm_config = VMConfigResource(deps.orchestrator)
    app.add_route("/api/v1/vms/{name}/config", vm_config)
    for view in ("history", "rollback"):
        app.add_route(f"/api/v1/vms/{{name}}/config/{view}", vm_config, suffix=view)
    app.add_route(AGENT_PROXY_ROUTE, AgentProxy(deps.orchestrator))
    app.add_route("/api/v1/vms/{name}/actions/{action}", VMAction(deps.orchestrator))
    app.add_route("/api/v1/vms/{name}/openapi", VMOpenAPI(deps.orchestrator))
    app.add_route("/api/v1/vms/{name}/logs", VMLogs(deps.orchestrator))
    app.add_route("/ws/v1/vms/{name}/console", VMConsole(deps.orchestrator, deps.settings.cors_origins))
    app.add_route("/api/v1/deployments", DeploymentCollection(deps.deployments, keys))
    app.add_route("/api/v1/deployments/{name}", DeploymentItem(deps.deployments))
    events = EventStream(
        deps.orchestrator.events,
        deps.orchestrator.store.events,
        heartbeat=deps.settings.sse_heartbeat,
        queue_size=deps.settings.sse_queue,
    )
    app.add_route("/api/v1/events/vms", events)
    image_cache = ImageCache(deps.orchestrator)
    app.add_route("/api/v1/images/cache", image_cache)
    app.add_route("/api/v1/images/cache/prune", image_cache, suffix="prune")
    app.add_route("/api/v1/plugins", RuntimeCollection(deps.catalog))
    app.add_route("/api/v1/plugins/{plugin}", runtime_item)
    app.add_route("/api/v1/plugins/{plugin}/manifest", runtime_item, suffix="manifest")
    app.add_route("/api/v1/plugins/{plugin}/enabled", runtime_item, suffix="enabled")
    app.add_route(DOCUMENT_PATH, OpenApiDocument(app))
    mount_plugin_routes(app, deps.plugins)
    return app
