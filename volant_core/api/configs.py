"""A VM's versioned configuration: ``/api/v1/vms/{name}/config``, its history and rollback."""

from __future__ import annotations

from typing import Any

import falcon

from volant_core.api.bodies import parse_body, query_count
from volant_core.api.models import MAX_HISTORY_LIMIT, HistoryLimit, ResourceName, RollbackRequest
from volant_core.api.openapi.operations import operation
from volant_core.api.responses import ConfigVersion
from volant_core.orchestrator import Orchestrator
from volant_core.orchestrator.vmconfig import ConfigPatch
from volant_core.store import ConfigRecord
from volant_core.vm import check_name


def versioned(record: ConfigRecord) -> dict[str, Any]:
    """One configuration version as the API returns it: ``{version, updated_at, config}``."""
    return {"version": record.version, "updated_at": record.updated_at.isoformat(), "config": record.config}


def history_limit(req: falcon.Request) -> int | None:
    """The ``limit`` query parameter: a count from 0 to :data:`MAX_HISTORY_LIMIT`, 0 or absent meaning all."""
    return query_count(req, "limit", default=0, maximum=MAX_HISTORY_LIMIT) or None


class VMConfigResource:
    """``/config`` (GET, PATCH), ``/config/history`` (GET) and ``/config/rollback`` (POST) of one VM.

    A change never restarts the VM; the VM resource says ``restart_pending``
    until the next start applies it.
    """

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    @operation(response=ConfigVersion, errors=(404, 422))
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """The current configuration version."""
        resp.media = versioned(self.orchestrator.get_config(check_name(name)))

    @operation(body=ConfigPatch, response=ConfigVersion, errors=(404, 409))
    def on_patch(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """Merge the body into the configuration; answers the new version."""
        check_name(name)
        patch = parse_body(req, ConfigPatch)
        resp.media = versioned(self.orchestrator.patch_config(name, patch))

    @operation(response=list[ConfigVersion], query={"limit": HistoryLimit}, errors=(404,))
    def on_get_history(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """Every configuration version, newest first (``?limit=N`` for the newest N)."""
        records = self.orchestrator.config_history(check_name(name), history_limit(req))
        resp.media = [versioned(record) for record in records]

    @operation(body=RollbackRequest, response=ConfigVersion, errors=(404, 409))
    def on_post_rollback(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """Make the body's ``version`` current again, stored as a new version; answers that version."""
        check_name(name)
        body = parse_body(req, RollbackRequest)
        resp.media = versioned(self.orchestrator.rollback_config(name, body.version))
