"""The error of a failed ``volar setup`` step."""

from __future__ import annotations

from volant_core.errors import VolantError


class HostSetupError(VolantError):
    """A step of ``volar setup`` failed (or cannot run here); the message says which and what to do."""

    code = "setup_failed"
