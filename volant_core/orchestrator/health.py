"""Watching a running guest: the VMM process and kestrel's health answer."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from volant_core.agent_client import HEALTH_PATH, AgentClient
from volant_core.errors import AgentError
from volant_core.launch import Instance

#: Longest a single health request may take (seconds).
PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class HealthVerdict:
    """Why watching stopped: the VMM exited (``exit_status``) or the agent kept failing (``reason``)."""

    exit_status: int | None = None
    reason: str | None = None


def watch(
    instance: Instance,
    client: AgentClient,
    *,
    interval: float,
    failures_allowed: int,
    stable_after: float,
    on_stable: Callable[[], object],
) -> HealthVerdict:
    """Poll ``GET /v1/health`` every ``interval`` seconds until the VMM exits or the agent fails
    ``failures_allowed`` times in a row. ``on_stable`` is called once after ``stable_after``
    seconds without a failure.
    """
    failures = 0
    healthy_since = time.monotonic()
    stable_reported = False
    while True:
        status = instance.wait(interval)
        if status is not None:
            return HealthVerdict(exit_status=status)
        try:
            answer = client.request("GET", HEALTH_PATH, timeout=PROBE_TIMEOUT_S, reserved=True)
            problem = "" if answer.status == 200 else f"HTTP {answer.status}: {answer.body[:200]!r}"
        except AgentError as err:
            problem = err.message
        if not problem:
            failures = 0
            if not stable_reported and time.monotonic() - healthy_since >= stable_after:
                stable_reported = True
                on_stable()
            continue
        failures += 1
        healthy_since = time.monotonic()
        if failures >= failures_allowed:
            return HealthVerdict(reason=f"agent failed {failures} health checks in a row: {problem}")
