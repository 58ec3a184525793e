"""The QEMU plugin's settings: ``VOLANT_QEMU_ACCEL``, ``VOLANT_QEMU_BINARY`` and
``VOLANT_QEMU_CONSOLE_LOG_MAX_BYTES`` (``volantd --qemu-accel`` and so on), declared to the core
through ``volant_settings`` and handed to the launcher in its context; read from the environment
directly only when a launcher is built without one.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from volant_core.plugin_settings import resolve_options

#: The plugin's entry-point name, which prefixes its variables.
PLUGIN_NAME = "qemu"


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


class QemuSettings(BaseModel):
    """How the QEMU backend runs guests."""

    model_config = ConfigDict(frozen=True)

    accel: Annotated[Literal["auto", "kvm", "tcg"], BeforeValidator(_lower)] = Field(
        default="auto",
        description="accelerator: auto (KVM when a probe boot proves it usable, else TCG), kvm or tcg",
    )
    binary: Annotated[str, Field(min_length=1)] = Field(
        default="qemu-system-x86_64",
        description="the QEMU system emulator (a path, or a name looked up in PATH)",
    )
    console_log_max_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=4096,
        description="size at which a VM's console.log is rotated to console.log.1 (checked every second "
        "while QEMU runs, and at each start); the console output a VM keeps is at most about twice this",
    )

    @classmethod
    def from_environment(cls) -> QemuSettings:
        """The settings from this process's ``VOLANT_QEMU_*`` variables (for launchers built by hand)."""
        settings = resolve_options(PLUGIN_NAME, cls, os.environ)
        assert isinstance(settings, cls)
        return settings
