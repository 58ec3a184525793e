"""Deployment resources: ``/api/v1/deployments``."""

from __future__ import annotations

import falcon

from volant_core.api.bodies import parse_body
from volant_core.api.idempotency import REQUEST_HEADERS, idempotent
from volant_core.api.models import CreateDeploymentRequest, ResourceName, UpdateDeploymentRequest
from volant_core.api.openapi.operations import operation
from volant_core.api.responses import DeploymentResource
from volant_core.errors import ValidationError
from volant_core.orchestrator.deployments import Deployments
from volant_core.store.idempotency import IdempotencyRepository
from volant_core.vm import check_name


class DeploymentCollection:
    """``/api/v1/deployments``: list and create."""

    def __init__(self, deployments: Deployments, idempotency: IdempotencyRepository) -> None:
        self.deployments = deployments
        self.idempotency = idempotency

    @operation(response=list[DeploymentResource], headers={"X-Total-Count": "Number of deployments"})
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Every deployment with its desired and ready replica counts."""
        items = self.deployments.list()
        resp.media = [d.to_dict() for d in items]
        resp.set_header("X-Total-Count", str(len(items)))

    @idempotent
    @operation(
        status=201,
        body=CreateDeploymentRequest,
        response=DeploymentResource,
        headers={"Location": "Path of the new deployment"},
        request_headers=REQUEST_HEADERS,
        errors=(404, 409),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Create a deployment; members are created by the reconcile loop right after."""
        body = parse_body(req, CreateDeploymentRequest)
        created = self.deployments.create(body.name, body.replicas, body.config)
        resp.status = falcon.HTTP_201
        resp.location = f"/api/v1/deployments/{created.name}"
        resp.media = created.to_dict()


class DeploymentItem:
    """``/api/v1/deployments/{name}``: read, scale or reconfigure, delete."""

    def __init__(self, deployments: Deployments) -> None:
        self.deployments = deployments

    @operation(response=DeploymentResource, errors=(404, 422))
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """One deployment and its members."""
        resp.media = self.deployments.get(check_name(name)).to_dict()

    @operation(body=UpdateDeploymentRequest, response=DeploymentResource, errors=(404, 409))
    def on_patch(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """Change ``replicas`` and/or ``config`` (rolled out one member at a time)."""
        body = parse_body(req, UpdateDeploymentRequest)
        if body.replicas is None and body.config is None:
            raise ValidationError("body: give replicas, config or both", field="replicas")
        updated = self.deployments.update(check_name(name), replicas=body.replicas, config=body.config)
        resp.media = updated.to_dict()

    @operation(status=204, errors=(404, 422))
    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """Delete every member, then the deployment."""
        self.deployments.delete(check_name(name))
        resp.status = falcon.HTTP_204
