"""A VM's workload through the API: actions, its OpenAPI document, its console log."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Annotated, Any

import falcon
from pydantic import Field

from volant_core.agent_client import AgentResponse
from volant_core.api.bodies import query_count, query_flag, read_json
from volant_core.api.models import ResourceName
from volant_core.api.openapi.operations import operation
from volant_core.errors import ValidationError
from volant_core.manifest import Manifest, parse_manifest
from volant_core.orchestrator import Orchestrator
from volant_core.orchestrator.workload import AgentCall, action_call, follow, openapi_call, tail
from volant_core.vm import ACTIVE_STATES, check_name

#: Headers that concern one connection only (RFC 9110 section 7.6.1): never passed on.
HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
#: Response headers not passed on from a buffered agent answer (hop-by-hop, or recomputed here).
HOP_HEADERS = HOP_BY_HOP_HEADERS | {"content-length"}
#: Lines ``GET .../logs`` returns when ``tail`` is not given, and the most it returns.
DEFAULT_TAIL = 200
MAX_TAIL = 100_000
#: ``?tail=`` of the logs: the last N lines.
LogTail = Annotated[int, Field(ge=0, le=MAX_TAIL, description="Last N lines (default 200)")]


def relay_head(
    status: int, headers: Mapping[str, str], resp: falcon.Response, dropped: frozenset[str]
) -> None:
    """Copy an agent answer's status and headers (lower-case names) into ``resp``, but ``dropped``."""
    resp.status = falcon.code_to_http_status(status)
    for key, value in headers.items():
        if key not in dropped:
            resp.set_header(key, value)


def relay(answer: AgentResponse, resp: falcon.Response) -> None:
    """Copy a buffered agent answer (status, end-to-end headers, body) into ``resp``."""
    relay_head(answer.status, answer.headers, resp, HOP_HEADERS)
    resp.data = answer.body


def _manifest(orchestrator: Orchestrator, name: str) -> Manifest:
    return parse_manifest(orchestrator.get_vm(check_name(name)).config["manifest"])


def _send(
    orchestrator: Orchestrator, name: str, call: AgentCall, body: bytes | None, resp: falcon.Response
) -> None:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    answer = orchestrator.agent(name).request(
        call.method, call.path, body=body, headers=headers, timeout=call.timeout
    )
    relay(answer, resp)


class VMAction:
    """``POST /api/v1/vms/{name}/actions/{action}``: run one of the manifest's actions."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    @operation(passthrough=True, errors=(404, 409, 415, 422, 502, 503, 504))
    def on_post(self, req: falcon.Request, resp: falcon.Response, name: ResourceName, action: str) -> None:
        """Run one of the manifest's actions: ``<method> <path>`` on the workload, through kestrel.

        An optional JSON object body is passed on; the answer is the workload's.
        """
        call = action_call(_manifest(self.orchestrator, name), action)
        body: Any = read_json(req) if req.content_length else None
        if body is not None and not isinstance(body, dict):
            raise ValidationError("body: an action takes a JSON object (or no body)", field="body")
        raw = falcon.media.JSONHandler().serialize(body, falcon.MEDIA_JSON) if body is not None else None
        _send(self.orchestrator, name, call, raw, resp)


class VMOpenAPI:
    """``GET /api/v1/vms/{name}/openapi``: the workload's own OpenAPI document, fetched from the guest."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    @operation(passthrough=True, errors=(404, 409, 422, 502, 503, 504))
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """The workload's OpenAPI document, as the workload serves it (never read from the host)."""
        _send(self.orchestrator, name, openapi_call(_manifest(self.orchestrator, name)), None, resp)


class VMLogs:
    """``GET /api/v1/vms/{name}/logs?tail=N&follow=true``: the guest console (kernel, kestrel, workload)."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    @operation(media_type="text/plain", query={"tail": LogTail, "follow": bool}, errors=(404,))
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """The guest console: the last ``tail`` lines, then with ``follow`` new output until the VM stops.

        Before following, at most the log's last MiB is answered, whatever ``tail`` asks for.
        """
        vm = self.orchestrator.get_vm(check_name(name))
        lines = query_count(req, "tail", default=DEFAULT_TAIL, maximum=MAX_TAIL)
        keep_following = query_flag(req, "follow")
        resp.content_type = "text/plain; charset=utf-8"
        log = self.orchestrator.console_log(name)
        if log is None:
            resp.data = b""
            return
        end = log.stat().st_size if log.exists() else 0
        head = tail(log, lines, end)
        if not keep_following:
            resp.data = head
            return

        def active() -> bool:
            return self.orchestrator.get_vm(vm.name).status in ACTIVE_STATES

        resp.stream = itertools.chain([head], follow(log, end, active))
