"""Watching a running guest: the VMM process, whether kestrel answers, and what it says of the workload.

Two failures are told apart. kestrel not answering at all (its VMM hangs, the guest kernel is
gone) is the *agent dead*: a crash. kestrel answering that the workload's health check fails is
the workload *unhealthy*: the VM still runs and the VM's ``on_unhealthy`` policy decides what
happens (see docs/adr/0029-health-policy-and-force-stop.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from volant_core.agent_client import HEALTH_PATH, AgentClient, AgentResponse
from volant_core.errors import AgentError
from volant_core.launch import Instance

#: Longest a single health request may take (seconds).
PROBE_TIMEOUT_S = 5.0
#: The ``health`` of a running VM whose workload passes its health check, and of one whose check fails.
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class HealthVerdict:
    """Why watching stopped: the VMM exited (``exit_status``) or the agent stopped answering (``reason``)."""

    exit_status: int | None = None
    reason: str | None = None


class HealthBoard:
    """The workload health last seen of each running VM: kept in memory, as it is an observation
    that the next probe makes again (after a daemon restart too).
    """

    def __init__(self) -> None:
        self._unhealthy: dict[str, str] = {}
        self._lock = threading.Lock()

    def mark(self, name: str, reason: str | None) -> None:
        """Record VM ``name``'s workload as unhealthy for ``reason``, or as healthy with None."""
        with self._lock:
            if reason is None:
                self._unhealthy.pop(name, None)
            else:
                self._unhealthy[name] = reason

    def of(self, name: str) -> tuple[str, str | None]:
        """``(health, reason)`` of the running VM ``name``: healthy unless marked unhealthy."""
        with self._lock:
            reason = self._unhealthy.get(name)
        return (HEALTHY, None) if reason is None else (UNHEALTHY, reason)


def watch(
    instance: Instance,
    client: AgentClient,
    *,
    interval: float,
    failures_allowed: int,
    stable_after: float,
    on_stable: Callable[[], object],
    on_health: Callable[[str | None], object],
) -> HealthVerdict:
    """Poll ``GET /v1/health`` every ``interval`` seconds until the VMM exits or the agent does not
    answer ``failures_allowed`` times in a row.

    After ``failures_allowed`` answers in a row saying the workload is unhealthy, ``on_health`` is
    called with the last reason; once the workload is healthy again, it is called with None (each
    change once). ``on_stable`` is called once after ``stable_after`` seconds without a failure.
    """
    silent = unhealthy = 0
    reported: str | None = None
    healthy_since = time.monotonic()
    stable_reported = False
    while True:
        status = instance.wait(interval)
        if status is not None:
            return HealthVerdict(exit_status=status)
        try:
            answer = client.request("GET", HEALTH_PATH, timeout=PROBE_TIMEOUT_S, reserved=True)
        except AgentError as err:
            silent += 1
            healthy_since = time.monotonic()
            if silent >= failures_allowed:
                problem = f"agent did not answer {silent} health checks in a row: {err.message}"
                return HealthVerdict(reason=problem)
            continue
        silent = 0
        if answer.status == 200:
            unhealthy = 0
            if reported is not None:
                reported = None
                on_health(None)
            if not stable_reported and time.monotonic() - healthy_since >= stable_after:
                stable_reported = True
                on_stable()
            continue
        unhealthy += 1
        healthy_since = time.monotonic()
        if unhealthy >= failures_allowed and reported is None:
            reported = f"workload failed {unhealthy} health checks in a row: {_problem(answer)}"
            on_health(reported)


def _problem(answer: AgentResponse) -> str:
    """What an unhealthy answer says: kestrel's ``reason``, else its status and the body's start."""
    try:
        body = answer.json()
    except AgentError:
        body = None
    reason = body.get("reason") if isinstance(body, dict) else None
    return str(reason) if reason else f"HTTP {answer.status}: {answer.body[:200]!r}"
