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
from volant_core.api.deployments import DeploymentCollection, DeploymentItem
from volant_core.api.runtimes import RuntimeCollection, RuntimeItem
from volant_core.api.system import Health, SystemPlugins
from volant_core.api.vms import AgentProxy, VMCollection, VMItem
from volant_core.orchestrator import Orchestrator
from volant_core.orchestrator.deployments import Deployments
from volant_core.plugins import PluginHost
from volant_core.runtimes import RuntimeCatalog

#: Largest request body accepted (bytes); bigger ones get 413.
MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ApiDeps:
    """What the API needs from the daemon."""

    orchestrator: Orchestrator
    catalog: RuntimeCatalog
    plugins: PluginHost
    deployments: Deployments


class _BodyLimit:
    """Refuse bodies over :data:`MAX_BODY_BYTES` before any resource reads them."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if (req.content_length or 0) > MAX_BODY_BYTES:
            raise falcon.HTTPContentTooLarge(
                description=f"request body over {MAX_BODY_BYTES} bytes; send a smaller document"
            )


def create_app(deps: ApiDeps) -> falcon.App:
    """Build the WSGI application for ``deps``."""
    app = falcon.App(middleware=[_BodyLimit()])
    errors.install(app)
    vm_item = VMItem(deps.orchestrator)
    runtime_item = RuntimeItem(deps.catalog)
    app.add_route("/healthz", Health())
    app.add_route("/api/v1/system/plugins", SystemPlugins(deps.plugins))
    app.add_route("/api/v1/vms", VMCollection(deps.orchestrator))
    app.add_route("/api/v1/vms/{name}", vm_item)
    for action in ("start", "stop", "restart"):
        app.add_route(f"/api/v1/vms/{{name}}/{action}", vm_item, suffix=action)
    vm_config = VMConfigResource(deps.orchestrator)
    app.add_route("/api/v1/vms/{name}/config", vm_config)
    for view in ("history", "rollback"):
        app.add_route(f"/api/v1/vms/{{name}}/config/{view}", vm_config, suffix=view)
    app.add_route("/api/v1/vms/{name}/agent/{path:path}", AgentProxy(deps.orchestrator))
    app.add_route("/api/v1/deployments", DeploymentCollection(deps.deployments))
    app.add_route("/api/v1/deployments/{name}", DeploymentItem(deps.deployments))
    app.add_route("/api/v1/plugins", RuntimeCollection(deps.catalog))
    app.add_route("/api/v1/plugins/{plugin}", runtime_item)
    app.add_route("/api/v1/plugins/{plugin}/manifest", runtime_item, suffix="manifest")
    app.add_route("/api/v1/plugins/{plugin}/enabled", runtime_item, suffix="enabled")
    return app
