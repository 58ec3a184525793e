"""VM resources: ``/api/v1/vms`` and everything below one VM."""

from __future__ import annotations

from typing import Annotated, Literal, cast

import falcon
from pydantic import Field, TypeAdapter

from volant_core.api.agent_relay import agent_target, forwarded_headers, relay_stream, request_body
from volant_core.api.bodies import parse_body, query_choice, query_count, query_flag, query_list
from volant_core.api.idempotency import REQUEST_HEADERS, idempotent
from volant_core.api.models import CreateVMRequest, ResourceName
from volant_core.api.openapi.operations import operation
from volant_core.api.responses import VMResource
from volant_core.api.vm_pages import VMPages
from volant_core.errors import ValidationError
from volant_core.orchestrator import Orchestrator
from volant_core.orchestrator.listing import SORT_KEYS, SortKey, VMQuery
from volant_core.store.idempotency import IdempotencyRepository
from volant_core.vm import VMStatus, check_name

#: Largest ``limit`` and ``offset`` of the VM list.
MAX_PAGE = 1_000_000
#: Query parameters of the VM list, for the OpenAPI document.
LIST_QUERY = {
    "status": Annotated[str, Field(description="Keep VMs in these states (repeat or comma-separate)")],
    "runtime": Annotated[str, Field(description="Keep VMs of this runtime (any case)")],
    "plugin": Annotated[str, Field(description="Keep VMs created from this runtime manifest (any case)")],
    "q": Annotated[str, Field(description="Substring of the name, IP address or runtime (any case)")],
    "sort": Annotated[SortKey, Field(description="Sort key; default created_at")],
    "order": Annotated[Literal["asc", "desc"], Field(description="Sort order; default asc")],
    "limit": Annotated[int, Field(ge=0, le=MAX_PAGE, description="Most VMs to answer; default all")],
    "offset": Annotated[int, Field(ge=0, le=MAX_PAGE, description="VMs to skip first; default 0")],
}
#: ``?force=true`` of stop and delete.
FORCE_QUERY = {
    "force": Annotated[
        bool, Field(description="Kill the VMM at once instead of powering the guest off (any state)")
    ]
}
#: The VM list's answer: checked by the pages' builder (its body is sent as bytes, not media).
LIST_RESPONSE = list[VMResource]


def _list_query(req: falcon.Request) -> VMQuery:
    """The :class:`VMQuery` of a list request; 422 naming the first bad parameter."""
    statuses = set()
    for value in query_list(req, "status"):
        try:
            statuses.add(VMStatus(value.lower()))
        except ValueError:
            known = ", ".join(VMStatus)
            raise ValidationError(f"status: {value!r} is not one of {known}", field="status") from None
    limit = query_count(req, "limit", default=MAX_PAGE, maximum=MAX_PAGE)
    return VMQuery(
        statuses=frozenset(statuses),
        runtime=req.get_param("runtime"),
        plugin=req.get_param("plugin"),
        text=req.get_param("q"),
        sort=cast(SortKey, query_choice(req, "sort", SORT_KEYS, default="created_at")),
        descending=query_choice(req, "order", ("asc", "desc"), default="asc") == "desc",
        limit=None if req.get_param("limit") is None else limit,
        offset=query_count(req, "offset", default=0, maximum=MAX_PAGE),
    )


class VMCollection:
    """``/api/v1/vms``: list and create."""

    def __init__(self, orchestrator: Orchestrator, idempotency: IdempotencyRepository) -> None:
        self.orchestrator = orchestrator
        self.idempotency = idempotency
        self._pages = VMPages(orchestrator, TypeAdapter(LIST_RESPONSE).validate_python)

    @operation(
        response=LIST_RESPONSE,
        headers={"X-Total-Count": "Number of VMs matching the filters, before limit and offset"},
        query=LIST_QUERY,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """List VMs: filtered, sorted (oldest first by default) and paged.

        ``status`` may be repeated and/or comma-separated; ``runtime`` and ``plugin``
        match exactly and ``q`` is a substring of the name, IP address or runtime,
        all ignoring case. ``limit=0`` answers no VMs, only ``X-Total-Count``.
        """
        page = self._pages.page(_list_query(req))
        resp.content_type = falcon.MEDIA_JSON
        resp.data = page.body
        resp.set_header("X-Total-Count", str(page.total))

    @idempotent
    @operation(
        status=201,
        body=CreateVMRequest,
        response=VMResource,
        headers={"Location": "Path of the new VM"},
        request_headers=REQUEST_HEADERS,
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

    @operation(status=204, query=FORCE_QUERY, errors=(404, 422))
    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """Stop the VM if needed and remove it with every host resource it held.

        An active VM is powered off gracefully first (up to the stop timeout, also while it is
        still starting); ``force=true`` kills its VMM at once.
        """
        self.orchestrator.delete_vm(check_name(name), force=query_flag(req, "force"))
        resp.status = falcon.HTTP_204

    @operation(response=VMResource, errors=(404, 409, 422, 500))
    def on_post_start(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """Boot a stopped or crashed VM again."""
        resp.media = self.orchestrator.start_vm(check_name(name)).to_dict()

    @operation(response=VMResource, query=FORCE_QUERY, errors=(404, 409, 422))
    def on_post_stop(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """Power the guest off (gracefully, then forcibly after the stop timeout); ``force=true``
        kills its VMM at once, whatever its state (a stop already waiting for the guest ends too).
        """
        force = query_flag(req, "force")
        resp.media = self.orchestrator.stop_vm(check_name(name), force=force).to_dict()

    @operation(response=VMResource, errors=(404, 409, 422, 500))
    def on_post_restart(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """Stop, then start."""
        resp.media = self.orchestrator.restart_vm(check_name(name)).to_dict()


class AgentProxy:
    """``/api/v1/vms/{name}/agent/{path}``: any request, relayed to kestrel in the guest."""

    #: The request body is relayed as it is read, whatever its size: the body limit does not apply.
    streams_request_body = True

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    @operation(passthrough=True, errors=(400, 404, 409, 411, 422, 502, 503, 504))
    def _relay(self, req: falcon.Request, resp: falcon.Response, name: ResourceName, path: str) -> None:
        """Relay the request to kestrel in the guest (any method); the answer is kestrel's, streamed.

        ``path`` may hold slashes and reaches kestrel encoded as it was sent
        (``a%2Fb`` stays ``a%2Fb``); the query string is passed on, and so is
        the body, as it is read (it needs a ``Content-Length``: 411 without).
        The answer's body is relayed as it arrives. Hop-by-hop headers (those
        ``Connection`` names too) and credentials are not passed on; a header
        value with CR, LF or NUL is a 400.
        """
        client = self.orchestrator.agent(check_name(name))
        body = request_body(req)
        headers = forwarded_headers(req)
        if body is not None:
            headers["Content-Length"] = str(req.content_length)
        answer = client.open(req.method, agent_target(req, name, path), body=body, headers=headers)
        relay_stream(answer, req, resp)

    on_get = on_post = on_put = on_patch = on_delete = on_head = on_options = _relay
