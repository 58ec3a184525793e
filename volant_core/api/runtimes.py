"""Runtime manifest resources: ``/api/v1/plugins`` (the Go original's name for them)."""

from __future__ import annotations

import falcon

from volant_core.api.bodies import parse_body, read_json
from volant_core.api.models import RuntimeName, SetEnabledRequest
from volant_core.api.openapi.operations import operation
from volant_core.api.responses import RuntimeList, RuntimeSummary
from volant_core.manifest import Manifest
from volant_core.runtimes import RuntimeCatalog


class RuntimeCollection:
    """``/api/v1/plugins``: list (installed and pip-shipped together) and install."""

    def __init__(self, catalog: RuntimeCatalog) -> None:
        self.catalog = catalog

    @operation(response=RuntimeList)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Every runtime manifest, by name, with its source."""
        resp.media = {"plugins": [entry.summary() for entry in self.catalog.list()]}

    @operation(
        status=201,
        body=Manifest,
        response=RuntimeSummary,
        headers={"Location": "Path of the runtime manifest"},
        errors=(409,),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Install (or upgrade) a runtime manifest; it is enabled at once."""
        entry = self.catalog.install(read_json(req))
        resp.status = falcon.HTTP_201
        resp.location = f"/api/v1/plugins/{entry.name}"
        resp.media = entry.summary()


class RuntimeItem:
    """``/api/v1/plugins/{plugin}``, ``/manifest`` and ``/enabled``."""

    def __init__(self, catalog: RuntimeCatalog) -> None:
        self.catalog = catalog

    @operation(response=Manifest, errors=(404,))
    def on_get(self, req: falcon.Request, resp: falcon.Response, plugin: RuntimeName) -> None:
        """The normalized manifest (also when disabled)."""
        resp.media = self.catalog.get(plugin).manifest_dict()

    @operation(response=Manifest, errors=(404, 409))
    def on_get_manifest(self, req: falcon.Request, resp: falcon.Response, plugin: RuntimeName) -> None:
        """The manifest for booting: 409 when the runtime is disabled."""
        resp.media = self.catalog.get_enabled(plugin).manifest_dict()

    @operation(status=204, errors=(404, 409))
    def on_delete(self, req: falcon.Request, resp: falcon.Response, plugin: RuntimeName) -> None:
        """Remove an installed manifest (409 while VMs use it or when it ships in a package)."""
        self.catalog.remove(plugin)
        resp.status = falcon.HTTP_204

    @operation(body=SetEnabledRequest, response=RuntimeSummary, errors=(404, 409))
    def on_post_enabled(self, req: falcon.Request, resp: falcon.Response, plugin: RuntimeName) -> None:
        """Enable or disable a runtime: ``{"enabled": true|false}``."""
        body = parse_body(req, SetEnabledRequest)
        resp.media = self.catalog.set_enabled(plugin, body.enabled).summary()
