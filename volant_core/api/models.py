"""Request bodies of the API as pydantic models (the OpenAPI schemas come from these)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from volant_core.orchestrator.requests import CreateVMRequest
from volant_core.vm import NAME_PATTERN, NAME_RULE

__all__ = [
    "CreateDeploymentRequest",
    "CreateVMRequest",
    "HistoryLimit",
    "ResourceName",
    "RollbackRequest",
    "RuntimeName",
    "SetEnabledRequest",
    "UpdateDeploymentRequest",
]

#: A VM or deployment name in a path (the OpenAPI schema of ``{name}``; ``check_name`` enforces it).
ResourceName = Annotated[
    str, Field(pattern=NAME_PATTERN.pattern, description=f"VM or deployment name: {NAME_RULE}")
]
#: A runtime manifest name in a path (``{plugin}``).
RuntimeName = Annotated[str, Field(min_length=1, description="Runtime manifest (plugin) name")]
#: Largest configuration version: versions are SQLite integers (64-bit, signed).
MAX_VERSION = 2**63 - 1
#: Largest ``?limit=`` of a configuration history (SQLite integers are 64-bit; no history is this long).
MAX_HISTORY_LIMIT = 1_000_000
#: ``?limit=`` of a configuration history: the newest N versions, 0 for all.
HistoryLimit = Annotated[
    int, Field(ge=0, le=MAX_HISTORY_LIMIT, description="Newest N versions only; 0 or absent for all")
]


class RollbackRequest(BaseModel):
    """``POST /api/v1/vms/{name}/config/rollback``: make an earlier version current again."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(
        ge=1, le=MAX_VERSION, strict=True, description="Version to restore (see config/history)"
    )


class SetEnabledRequest(BaseModel):
    """``POST /api/v1/plugins/{plugin}/enabled``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool


class CreateDeploymentRequest(BaseModel):
    """``POST /api/v1/deployments``: run ``replicas`` VMs named ``<name>-<n>`` from ``config``.

    ``config`` holds the keys of a VM configuration (those of ``PATCH /vms/{name}/config``)
    and must name the ``plugin``.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Deployment name (a DNS label short enough for member suffixes)")
    replicas: int = Field(default=1, ge=0, strict=True)
    config: dict[str, Any] = Field(description="Member VM configuration; must include plugin")


class UpdateDeploymentRequest(BaseModel):
    """``PATCH /api/v1/deployments/{name}``: scale, and/or roll out a new member configuration."""

    model_config = ConfigDict(extra="forbid")

    replicas: int | None = Field(default=None, ge=0, strict=True)
    config: dict[str, Any] | None = None
