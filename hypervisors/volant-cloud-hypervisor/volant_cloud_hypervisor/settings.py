"""The Cloud Hypervisor plugin's settings: ``VOLANT_CLOUD_HYPERVISOR_BINARY`` and
``VOLANT_CLOUD_HYPERVISOR_CONSOLE_LOG_MAX_BYTES`` (``volantd --cloud-hypervisor-binary`` and so on),
declared to the core through ``volant_settings`` and handed to the launcher in its context; read
from the environment directly only when a launcher is built without one.
"""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from volant_core.plugin_settings import resolve_options

#: The plugin's entry-point name, which prefixes its variables.
PLUGIN_NAME = "cloud-hypervisor"
#: The binary looked up when no setting names another.
DEFAULT_BINARY = "cloud-hypervisor"


class CloudHypervisorSettings(BaseModel):
    """How the Cloud Hypervisor backend runs guests."""

    model_config = ConfigDict(frozen=True)

    binary: Annotated[str, Field(min_length=1)] = Field(
        default=DEFAULT_BINARY,
        description="the cloud-hypervisor binary (a path, or a name looked up in PATH)",
    )
    console_log_max_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=4096,
        description="size at which a VM's console.log is rotated to console.log.1 (by the console relay, "
        "as it writes); the console output a VM keeps is at most about twice this",
    )

    @classmethod
    def from_environment(cls) -> CloudHypervisorSettings:
        """The settings from this process's ``VOLANT_CLOUD_HYPERVISOR_*`` variables."""
        settings = resolve_options(PLUGIN_NAME, cls, os.environ)
        assert isinstance(settings, cls)
        return settings
