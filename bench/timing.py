"""Timing helpers shared by the benchmarks: repeat a step, keep its wall-clock samples, and print
a measured step against a baseline step run in the same process, as a ratio of medians.

The machines are noisy, so no benchmark compares against a number kept from another run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def samples(step: Callable[[], object], rounds: int, *, warmup: int = 1) -> list[float]:
    """Seconds each of ``rounds`` calls of ``step`` took (after ``warmup`` calls not counted)."""
    for _ in range(warmup):
        step()
    taken = []
    for _ in range(rounds):
        started = time.perf_counter()
        step()
        taken.append(time.perf_counter() - started)
    return taken


def report(what: str, baseline: list[float], measured: list[float], *, unit_bytes: int = 0) -> float:
    """Print one comparison line and return the ratio of medians (measured / baseline).

    With ``unit_bytes`` (the bytes one step moves) the line also gives both throughputs.
    """
    base, mine = statistics.median(baseline), statistics.median(measured)
    ratio = mine / base
    line = (
        f"{what}: ratio {ratio:.2f}  (median {mine * 1000:.2f} ms against {base * 1000:.2f} ms, "
        f"{(mine - base) * 1000:+.2f} ms, {len(measured)} rounds)"
    )
    if unit_bytes:
        line += f"  {unit_bytes / mine / 2**20:.0f} MiB/s against {unit_bytes / base / 2**20:.0f} MiB/s"
    print(line, flush=True)
    return ratio
