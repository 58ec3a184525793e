"""Restart policy: what the orchestrator does when a VM crashes on its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Longest wait between two automatic restarts (seconds).
MAX_BACKOFF_S = 60.0


@dataclass(frozen=True)
class RestartPolicy:
    """``never`` (the default) or ``on-failure`` with exponential backoff and a cap on attempts.

    ``max_restarts`` counts consecutive automatic restarts; the count starts
    again once a VM has run healthily for a while, or on an explicit start.
    """

    mode: str = "never"
    max_restarts: int = 5
    backoff_s: float = 1.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RestartPolicy:
        """The policy stored in a VM config (``restart_policy``), defaults for missing fields."""
        raw = config.get("restart_policy") or {}
        return cls(**{k: raw[k] for k in ("mode", "max_restarts", "backoff_s") if raw.get(k) is not None})

    def delay(self, attempt: int) -> float | None:
        """Seconds to wait before restart number ``attempt`` (0-based), or None for no restart."""
        if self.mode != "on-failure" or attempt >= self.max_restarts:
            return None
        return min(self.backoff_s * 2**attempt, MAX_BACKOFF_S)
