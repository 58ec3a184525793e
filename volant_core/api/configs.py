"""A VM's versioned configuration: ``/api/v1/vms/{name}/config``, its history and rollback."""

from __future__ import annotations

from typing import Any

import falcon

from volant_core.api.bodies import parse_body
from volant_core.api.models import RollbackRequest
from volant_core.errors import ValidationError
from volant_core.orchestrator import Orchestrator
from volant_core.orchestrator.vmconfig import ConfigPatch
from volant_core.store import ConfigRecord
from volant_core.vm import check_name


def versioned(record: ConfigRecord) -> dict[str, Any]:
    """One configuration version as the API returns it: ``{version, updated_at, config}``."""
    return {"version": record.version, "updated_at": record.updated_at.isoformat(), "config": record.config}


def history_limit(req: falcon.Request) -> int | None:
    """The ``limit`` query parameter: a count >= 0, 0 or absent meaning all."""
    raw = req.get_param("limit")
    if raw is None:
        return None
    if not raw.isdigit():
        raise ValidationError(f"limit: {raw!r} is not a whole number >= 0 (0 means all)", field="limit")
    return int(raw) or None


class VMConfigResource:
    """``/config`` (GET, PATCH), ``/config/history`` (GET) and ``/config/rollback`` (POST) of one VM.

    A change never restarts the VM; the VM resource says ``restart_pending``
    until the next start applies it.
    """

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        """The current configuration version."""
        resp.media = versioned(self.orchestrator.get_config(check_name(name)))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        """Merge the body into the configuration; answers the new version."""
        check_name(name)
        patch = parse_body(req, ConfigPatch)
        resp.media = versioned(self.orchestrator.patch_config(name, patch))

    def on_get_history(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        """Every configuration version, newest first (``?limit=N`` for the newest N)."""
        records = self.orchestrator.config_history(check_name(name), history_limit(req))
        resp.media = [versioned(record) for record in records]

    def on_post_rollback(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        """Make the body's ``version`` current again, stored as a new version; answers that version."""
        check_name(name)
        body = parse_body(req, RollbackRequest)
        resp.media = versioned(self.orchestrator.rollback_config(name, body.version))
