"""What the deployment controller remembers about one deployment between passes: members booting,
members that failed (to be created, or crashed for good) with their exponential backoff, and
member names held by VMs outside the deployment.

A member that failed waits ``1 s`` before its next attempt, doubling with every failure in a row
up to :data:`BACKOFF_CAP_S`. The count is inherited along replacements (a replacement of a member
that failed starts from that member's count) and is forgotten once a member runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

#: Wait (seconds) after the first failure of a member.
BACKOFF_FIRST_S = 1.0
#: Longest wait (seconds) between two attempts.
BACKOFF_CAP_S = 60.0


def backoff_delay(attempts: int) -> float:
    """Seconds to wait after failure number ``attempts`` (1-based) in a row."""
    return min(BACKOFF_FIRST_S * 2 ** (attempts - 1), BACKOFF_CAP_S)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass
class MemberFailure:
    """A member that failed: it could not be created (no VM row is left), or it crashed and its
    restart policy gave up (its row is kept, with its reason and console log, until replaced).
    """

    name: str
    attempts: int
    last_error: str
    failed_at: datetime
    crashed: bool
    replaced_by: str | None = None
    """For a crashed member: the member booted in its place, once there is one."""

    @property
    def retry_at(self) -> datetime:
        """When the next attempt may start."""
        return self.failed_at + timedelta(seconds=backoff_delay(self.attempts))

    @property
    def waiting(self) -> bool:
        """Whether this failure still holds a member slot (nothing was booted in its place yet)."""
        return self.replaced_by is None

    def due(self, now: datetime) -> bool:
        """Whether the next attempt may start at ``now``."""
        return now >= self.retry_at

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, shown under the deployment's ``status.failing``."""
        return {
            "name": self.name,
            "kind": "crashed" if self.crashed else "create_failed",
            "attempts": self.attempts,
            "last_error": self.last_error,
            "failed_at": self.failed_at.isoformat(),
            "next_retry_at": self.retry_at.isoformat() if self.waiting else None,
            "replaced_by": self.replaced_by,
        }


@dataclass
class DeploymentState:
    """The controller's memory of one deployment (guarded by the controller's state lock)."""

    booting: set[str] = field(default_factory=set)
    """Members whose create (and boot) runs in a worker thread now."""
    failures: dict[str, MemberFailure] = field(default_factory=dict)
    inherited: dict[str, int] = field(default_factory=dict)
    """Failures in a row a member inherited when it was booted (forgotten once it runs)."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Member names held by a VM outside the deployment, with why they are skipped."""
    deleted: bool = False
    """Set when the deployment is deleted: a boot finishing later deletes its member."""

    def record_failure(self, name: str, error: str, *, crashed: bool, now: datetime) -> MemberFailure:
        """Note that member ``name`` failed (again); the failure with its new attempt count."""
        previous = self.failures.get(name)
        attempts = max(previous.attempts if previous else 0, self.inherited.get(name, 0)) + 1
        failure = MemberFailure(name, attempts, error, now, crashed)
        self.failures[name] = failure
        return failure

    def waiting(self) -> list[MemberFailure]:
        """Failures still holding a member slot, by name."""
        return sorted((f for f in self.failures.values() if f.waiting), key=lambda f: f.name)

    def status(self) -> dict[str, Any]:
        """JSON-ready form, the deployment's ``status``."""
        return {
            "booting": sorted(self.booting),
            "failing": [f.to_dict() for f in sorted(self.failures.values(), key=lambda f: f.name)],
            "skipped": [{"name": n, "reason": r} for n, r in sorted(self.skipped.items())],
        }
