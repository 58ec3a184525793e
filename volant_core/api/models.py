"""Request bodies of the API as pydantic models (the OpenAPI schemas come from these)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from volant_core.orchestrator.requests import CreateVMRequest

__all__ = [
    "CreateDeploymentRequest",
    "CreateVMRequest",
    "RollbackRequest",
    "SetEnabledRequest",
    "UpdateDeploymentRequest",
]


class RollbackRequest(BaseModel):
    """``POST /api/v1/vms/{name}/config/rollback``: make an earlier version current again."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, strict=True, description="Version to restore (see config/history)")


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

