"""What this host offers VMs: the CPUs volantd may run on and its memory.

Resource admission (:mod:`volant_core.orchestrator.admission`) reads it on every check, so a CPU
set or memory changed at run time counts at once; tests read it too, to find the boundaries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: Where Linux tells the host's memory.
MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class HostCapacity:
    """CPUs and memory of the host."""

    cpus: int
    """CPUs volantd (and so the VMMs it starts) may run on."""
    memory_mb: int
    """Memory of the host in MiB (``MemTotal``)."""


def host_capacity() -> HostCapacity:
    """The CPUs this process may run on (its affinity mask) and the host's ``MemTotal``."""
    return HostCapacity(cpus=len(os.sched_getaffinity(0)), memory_mb=_memory_total_kib() // 1024)


def _memory_total_kib() -> int:
    """``MemTotal`` of ``/proc/meminfo``, in KiB (the kernel's "kB")."""
    for line in MEMINFO.read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "MemTotal":
            return int(value.split()[0])
    raise RuntimeError(f"{MEMINFO} has no MemTotal line")
