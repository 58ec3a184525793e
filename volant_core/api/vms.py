"""VM resources: ``/api/v1/vms`` and everything below one VM."""

from __future__ import annotations

import falcon

from volant_core.api.bodies import parse_body
from volant_core.api.models import CreateVMRequest, ResourceName
from volant_core.api.openapi.operations import operation
from volant_core.api.responses import VMResource
from volant_core.api.workload import relay
from volant_core.orchestrator import Orchestrator
from volant_core.vm import check_name

#: Request headers never forwarded to the guest agent (hop-by-hop, or ours).
_DROPPED_HEADERS = frozenset(
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
        "accept-encoding",
        "x-volant-api-key",
        "authorization",
    }
)


class VMCollection:
    """``/api/v1/vms``: list and create."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    @operation(response=list[VMResource], headers={"X-Total-Count": "Number of VMs"})
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """List VMs, oldest first."""
        vms = self.orchestrator.list_vms()
        resp.media = [vm.to_dict() for vm in vms]
        resp.set_header("X-Total-Count", str(len(vms)))

    @operation(
        status=201,
        body=CreateVMRequest,
        response=VMResource,
        headers={"Location": "Path of the new VM"},
        errors=(404, 409, 500),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Create a VM and start booting it; answers 201 with status ``starting``."""
        body = parse_body(req, CreateVMRequest)
        vm = self.orchestrator.create_vm(body)
        resp.status = falcon.HTTP_201
        resp.location = f"/api/v1/vms/{vm.name}"
        resp.media = vm.to_dict()


class VMItem:
    """``/api/v1/vms/{name}``: read and delete; ``/start``, ``/stop``, ``/restart``."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    @operation(response=VMResource, errors=(404, 422))
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """One VM."""
        resp.media = self.orchestrator.get_vm(check_name(name)).to_dict()

    @operation(status=204, errors=(404, 422))
    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """Stop the VM if needed and remove it with every host resource it held."""
        self.orchestrator.delete_vm(check_name(name))
        resp.status = falcon.HTTP_204

    @operation(response=VMResource, errors=(404, 409, 422, 500))
    def on_post_start(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """Boot a stopped or crashed VM again."""
        resp.media = self.orchestrator.start_vm(check_name(name)).to_dict()

    @operation(response=VMResource, errors=(404, 409, 422))
    def on_post_stop(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """Power the guest off (gracefully, then forcibly after the stop timeout)."""
        resp.media = self.orchestrator.stop_vm(check_name(name)).to_dict()

    @operation(response=VMResource, errors=(404, 409, 422, 500))
    def on_post_restart(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """Stop, then start."""
        resp.media = self.orchestrator.restart_vm(check_name(name)).to_dict()


class AgentProxy:
    """``/api/v1/vms/{name}/agent/{path}``: any request, relayed to kestrel in the guest."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    @operation(passthrough=True, errors=(404, 409, 422, 502, 503, 504))
    def _relay(self, req: falcon.Request, resp: falcon.Response, name: ResourceName, path: str) -> None:
        """Relay the request to kestrel in the guest (any method); the answer is kestrel's.

        ``path`` may hold slashes; the query string and the body are passed on,
        hop-by-hop headers and credentials are not.
        """
        client = self.orchestrator.agent(check_name(name))
        target = "/" + path.lstrip("/")
        if req.query_string:
            target += "?" + req.query_string
        headers = {k: v for k, v in req.headers.items() if k.lower() not in _DROPPED_HEADERS}
        body = req.bounded_stream.read() or None
        relay(client.request(req.method, target, body=body, headers=headers), resp)

    on_get = on_post = on_put = on_patch = on_delete = on_head = on_options = _relay
