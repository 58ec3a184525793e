"""Checking a confined VMM as the kernel reports it, for the hypervisor plugins' confinement tests:
its ids and groups (``/proc/PID/status``), its cgroups' limits (``/proc/PID/cgroup`` and the
groups' files), and what a process with its ids reaches. The pytest plugin's ``volant_vmm_user``
and ``volant_cgroup_parent`` fixtures give the VMM user (skipping unless root) and a parent
cgroup of the test's own.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from volant_core.cgroups import hierarchies
from volant_core.testing.waiting import eventually

#: The VMM user ``scripts/bootstrap.sh`` (or ``volar setup``) creates.
VMM_USER = "volant-vmm"
#: Longest wait for the processes a test left in its cgroups to end after SIGKILL (seconds).
REAP_TIMEOUT = 30.0


def require_vmm_user() -> pwd.struct_passwd:
    """The VMM user; the calling test is skipped when not root, failed when the user is missing."""
    if os.geteuid() != 0:
        pytest.skip(
            f"needs root: only root starts VMMs as another user (this test runs as uid {os.geteuid()})"
        )
    try:
        return pwd.getpwnam(VMM_USER)
    except KeyError:
        pytest.fail(f"user {VMM_USER} is missing: run scripts/bootstrap.sh")


@contextlib.contextmanager
def scratch_cgroup_parent() -> Iterator[str]:
    """A parent cgroup name of its own, removed afterwards with any group left inside; a process
    still in one (what a failed test left: a guest's workload, say) is killed first."""
    parent = f"volant-test-{uuid.uuid4().hex[:8]}"
    try:
        yield parent
    finally:
        for hierarchy in {h.mount for h in hierarchies().values()}:
            directory = hierarchy / parent
            if directory.is_dir():
                for child in directory.iterdir():
                    if child.is_dir():
                        _empty(child)
                        child.rmdir()
                directory.rmdir()


def _empty(group: Path) -> None:
    """SIGKILL every process of the cgroup ``group`` and wait until none is left."""

    def members() -> list[int]:
        return [int(pid) for pid in (group / "cgroup.procs").read_text().split()]

    for pid in members():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    eventually(lambda: not members(), f"the processes of {group} end", REAP_TIMEOUT)


def cgroup_exists(parent: str) -> bool:
    """Whether the parent cgroup ``parent`` exists in any hierarchy."""
    return any((h.mount / parent).exists() for h in hierarchies().values())


def process_status(pid: int) -> dict[str, str]:
    """``/proc/PID/status`` as a mapping (``Uid``, ``Gid``, ``Groups``, ``CapEff``, ``Seccomp`` ...)."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def cgroup_limits(membership_lines: list[str]) -> dict[str, str]:
    """The CPU quota (``QUOTA PERIOD``), CPU weight (in vCPUs) and memory limit (bytes) of the
    cgroup(s) of ``membership_lines`` (a process's ``/proc/PID/cgroup``), and the group of each
    controller (``cpu-group``, ``memory-group``)."""
    membership: dict[str, str] = {}
    for line in membership_lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else ["unified"]:
            membership[controller] = path
    limits = {}
    for controller, hierarchy in hierarchies().items():
        group = hierarchy.mount / membership["unified" if hierarchy.unified else controller].lstrip("/")
        if controller == "cpu":  # its weight against the host's other processes, in vCPUs
            unit, name = (100, "cpu.weight") if hierarchy.unified else (1024, "cpu.shares")
            limits["weight"] = str(int((group / name).read_text()) // unit)
        if controller == "cpu" and hierarchy.unified:
            limits["cpu"] = (group / "cpu.max").read_text().strip()
        elif controller == "cpu":
            quota = (group / "cpu.cfs_quota_us").read_text().strip()
            limits["cpu"] = f"{quota} {(group / 'cpu.cfs_period_us').read_text().strip()}"
        else:
            name = "memory.max" if hierarchy.unified else "memory.limit_in_bytes"
            limits["memory"] = (group / name).read_text().strip()
        limits[f"{controller}-group"] = str(group)
    return limits


def process_limits(pid: int) -> dict[str, str]:
    """:func:`cgroup_limits` of the process ``pid``."""
    return cgroup_limits(Path(f"/proc/{pid}/cgroup").read_text().splitlines())


#: What :func:`plant_links`' victim file holds; a test checks it is still all it holds.
UNTOUCHED = "untouched\n"


def plant_links(vm_dir: Path, outside: Path, files: Iterable[str], directories: Iterable[str]) -> Path:
    """Leave in the new directory ``vm_dir`` what a hostile VMM could: a link under each name in
    ``files`` to a victim file in the new directory ``outside``, and under each name in
    ``directories`` to ``outside`` itself. Returns the victim (holding :data:`UNTOUCHED`); after the
    daemon wrote its files, it should be unchanged and alone in ``outside``."""
    outside.mkdir()
    victim = outside / "victim"
    victim.write_text(UNTOUCHED)
    vm_dir.mkdir()
    for name in files:
        (vm_dir / name).symlink_to(victim)
    for name in directories:
        (vm_dir / name).symlink_to(outside)
    return victim


def intrude_as(status: dict[str, str], directory: Path, sock: Path) -> str:
    """What a child process running with the uid, gid and groups ``status`` (a running VMM's
    :func:`process_status`) gets when it lists ``directory`` and connects to the UNIX socket
    ``sock``: ``ok`` or the error's name, for each. (A fork rather than an interpreter started as
    that user: the test's interpreter may lie where it cannot reach.)"""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe and exits at once
        outcome = "error"
        try:
            os.setgroups([int(g) for g in status["Groups"].split()])
            os.setgid(int(status["Gid"].split()[0]))
            os.setuid(int(status["Uid"].split()[0]))
            outcomes = []
            for attempt in (
                lambda: os.listdir(directory),
                lambda: socket.socket(socket.AF_UNIX).connect(str(sock)),
            ):
                try:
                    attempt()
                    outcomes.append("ok")
                except OSError as err:
                    outcomes.append(type(err).__name__)
            outcome = " ".join(outcomes)
        finally:
            os.write(writer, outcome.encode())
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as answer:
        result = answer.read().decode()
    os.waitpid(child, 0)
    return result
