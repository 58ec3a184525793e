"""A VMM's own control group: CPU and memory limits taken from its VM's resources.

Each VM gets ``<parent>/<vm>`` in the host's cgroup hierarchies (``VOLANT_VMM_CGROUP`` names the
parent, relative to each hierarchy's root). With cgroup v2 that is one directory with ``cpu.max``
and ``memory.max`` (the ``cpu`` and ``memory`` controllers are enabled down to it); on a host that
still mounts the v1 ``cpu`` and ``memory`` hierarchies (hybrid mode) it is one directory in each,
with ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` and ``memory.limit_in_bytes``. Which one is used
follows from where the ``cpu`` and ``memory`` controllers are mounted (``/proc/self/mountinfo``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from volant_core.errors import LaunchError

log = logging.getLogger(__name__)

#: The scheduling period the CPU quota is expressed in (microseconds): a vCPU is one period per period.
CPU_PERIOD_US = 100_000
#: The controllers a VM's group limits.
CONTROLLERS = ("cpu", "memory")
#: The setting naming the parent group (or ``off``).
CGROUP_SETTING = "VOLANT_VMM_CGROUP"
#: How long removing a group waits for its last process to be gone.
REMOVE_TIMEOUT = 10.0
MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy: its mount point, and whether it is the unified (v2) one."""

    mount: Path
    unified: bool


def hierarchies(mountinfo: Path = MOUNTINFO) -> dict[str, Hierarchy]:
    """Where each of :data:`CONTROLLERS` is mounted: by controller name (missing: not available)."""
    found: dict[str, Hierarchy] = {}
    unified: Path | None = None
    for line in mountinfo.read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        fstype, options = fields[separator + 1], fields[separator + 3].split(",")
        mount = Path(fields[4])
        if fstype == "cgroup2":
            unified = mount
        elif fstype == "cgroup":
            for controller in CONTROLLERS:
                if controller in options:
                    found[controller] = Hierarchy(mount, unified=False)
    if unified is not None:
        available = (unified / "cgroup.controllers").read_text().split()
        for controller in CONTROLLERS:
            if controller in available:
                found.setdefault(controller, Hierarchy(unified, unified=True))
    return found


class VmCgroup:
    """The group(s) of one VM: created with its limits, given the VMM's pid, removed after it."""

    def __init__(self, parent: str, name: str, *, mountinfo: Path = MOUNTINFO) -> None:
        """The group ``<parent>/<name>`` in the hierarchies holding the ``cpu`` and ``memory``
        controllers; :class:`LaunchError` naming :data:`CGROUP_SETTING` when either is missing.
        """
        found = hierarchies(mountinfo)
        missing = [controller for controller in CONTROLLERS if controller not in found]
        if missing:
            raise LaunchError(
                f"{CGROUP_SETTING}: this host mounts no cgroup hierarchy with the {', '.join(missing)} "
                f"controller, so a VMM's CPU and memory cannot be limited; mount cgroup v2 with them "
                f"enabled, or set {CGROUP_SETTING}=off to run VMMs without limits"
            )
        self.parent = parent.strip("/")
        self.name = name
        self._hierarchies = {controller: found[controller] for controller in CONTROLLERS}

    @property
    def directories(self) -> dict[str, Path]:
        """The group's directory for each controller (one and the same under cgroup v2)."""
        return {
            controller: hierarchy.mount / self.parent / self.name
            for controller, hierarchy in self._hierarchies.items()
        }

    def create(self, cpu_cores: int, memory_bytes: int) -> None:
        """Make the group with ``cpu_cores`` vCPUs' worth of CPU time and ``memory_bytes`` of memory
        (an existing group, left by a crash, is reused); :class:`LaunchError` saying what failed.
        """
        quota = cpu_cores * CPU_PERIOD_US
        try:
            for controller, hierarchy in self._hierarchies.items():
                directory = self.directories[controller]
                if hierarchy.unified:
                    self._enable_controllers(hierarchy.mount)
                directory.mkdir(parents=True, exist_ok=True)
                if controller == "cpu":
                    self._weigh(hierarchy, directory, cpu_cores)
                if controller == "cpu" and hierarchy.unified:
                    _write(directory / "cpu.max", f"{quota} {CPU_PERIOD_US}")
                elif controller == "cpu":
                    _write(directory / "cpu.cfs_period_us", str(CPU_PERIOD_US))
                    _write(directory / "cpu.cfs_quota_us", str(quota))
                elif hierarchy.unified:
                    _write(directory / "memory.max", str(memory_bytes))
                else:
                    _write(directory / "memory.limit_in_bytes", str(memory_bytes))
        except OSError as err:
            self.remove(timeout=0)
            raise LaunchError(
                f"cannot create the VMM's cgroup {self.parent}/{self.name}: {err}; "
                f"set {CGROUP_SETTING}=off to run VMMs without CPU and memory limits"
            ) from err

    def add(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) into the group."""
        try:
            for directory in dict.fromkeys(self.directories.values()):
                _write(directory / "cgroup.procs", str(pid))
        except OSError as err:
            raise LaunchError(
                f"cannot move the VMM {pid} into its cgroup {self.parent}/{self.name}: {err}"
            ) from err

    def remove(self, timeout: float = REMOVE_TIMEOUT) -> None:
        """Delete the group once its processes are gone (waiting up to ``timeout`` s for an exiting
        one); a missing group is fine. A group still busy after that is left, and logged by the caller.
        """
        deadline = time.monotonic() + timeout
        for directory in dict.fromkeys(self.directories.values()):
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as err:
                    if err.errno != errno.EBUSY or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.05)

    def _weigh(self, hierarchy: Hierarchy, directory: Path, cpu_cores: int) -> None:
        """Weigh the VM's group as ``cpu_cores`` busy processes, and the parent as all of the host's
        CPUs: each group competes with the host's other processes as one, and a parent at the
        default weight would give all VMs together the CPU time of a single process.
        """
        name, unit, most = ("cpu.weight", 100, 10_000) if hierarchy.unified else ("cpu.shares", 1024, 262_144)
        host_cpus = os.cpu_count() or 1
        _write(hierarchy.mount / self.parent / name, str(min(most, unit * host_cpus)))
        _write(directory / name, str(min(most, unit * cpu_cores)))

    def _enable_controllers(self, mount: Path) -> None:
        """Enable ``cpu`` and ``memory`` for the children of the root and of each parent level."""
        level = mount
        for part in ("", *Path(self.parent).parts):
            level = level / part if part else level
            level.mkdir(exist_ok=True)
            control = level / "cgroup.subtree_control"
            enabled = control.read_text().split()
            for controller in CONTROLLERS:
                if controller not in enabled:
                    _write(control, f"+{controller}")


def remove_quietly(cgroup: VmCgroup | None) -> None:
    """Remove ``cgroup`` (if any) after its VMM is gone; a group that cannot be removed is logged and left."""
    if cgroup is None:
        return
    try:
        cgroup.remove()
    except OSError as err:
        log.warning("cannot remove the cgroup %s/%s: %s", cgroup.parent, cgroup.name, err)


def _write(path: Path, value: str) -> None:
    """Write ``value`` to the cgroup file ``path`` in one ``write()``."""
    descriptor = os.open(path, os.O_WRONLY)
    try:
        os.write(descriptor, value.encode())
    finally:
        with contextlib.suppress(OSError):
            os.close(descriptor)
