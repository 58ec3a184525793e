"""The process behind a hypervisor instance: our own child, or one adopted from an earlier daemon.

Shared by hypervisor plugins (QEMU, the test host-process backend) so that each
waits for, polls and kills its VMM the same way, pid reuse included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Protocol

#: How often an adopted process is polled through ``/proc`` while waiting for it.
ADOPTED_POLL_INTERVAL = 0.1


class VmmProcess(Protocol):
    """What an instance needs from its VMM process (:class:`ChildProcess` or :class:`AdoptedProcess`)."""

    pid: int

    def wait(self, timeout: float | None) -> int | None:
        """Exit status once the process is gone, or None if it still runs after ``timeout``."""
        ...

    def alive(self) -> bool:
        """Whether the process still runs."""
        ...

    def kill(self) -> None:
        """Send SIGKILL unless the process is already gone."""
        ...


class ChildProcess:
    """A VMM we started: its real exit status is known (negative for a signal)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        """Wrap the ``Popen`` that started the VMM."""
        self._popen = popen
        self.pid = popen.pid

    def wait(self, timeout: float | None) -> int | None:
        """Reap the child; None if it still runs after ``timeout``."""
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def alive(self) -> bool:
        """Whether the child has not exited yet."""
        return self._popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the child (a no-op once it was reaped)."""
        self._popen.kill()


class AdoptedProcess:
    """A VMM started by an earlier daemon: watched through ``/proc``, reported as 0 once gone.

    The process start time read at adoption guards against pid reuse.
    """

    def __init__(self, pid: int, start_time: str) -> None:
        """Use :meth:`attach` rather than calling this directly."""
        self.pid = pid
        self._start_time = start_time

    @classmethod
    def attach(cls, pid: int, start_time: str | None = None) -> AdoptedProcess | None:
        """The running process ``pid`` (started at ``start_time``, when given), or None when there
        is none (or only a zombie, or another process that reused the pid).
        """
        stat = _read_stat(pid)
        if stat is None or stat[0] in "ZX" or start_time not in (None, stat[1]):
            return None
        return cls(pid, stat[1])

    @property
    def start_time(self) -> str:
        """When the process started (clock ticks after boot): with the pid, it names one process."""
        return self._start_time

    def alive(self) -> bool:
        """Whether the same process (same start time) still runs and is not a zombie."""
        stat = _read_stat(self.pid)
        return stat is not None and stat[1] == self._start_time and stat[0] not in "ZX"

    def wait(self, timeout: float | None) -> int | None:
        """Poll ``/proc`` until the process is gone (0) or ``timeout`` passes (None)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.alive():
            pause = ADOPTED_POLL_INTERVAL
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                pause = min(pause, remaining)
            time.sleep(pause)
        return 0

    def kill(self) -> None:
        """SIGKILL the process if it is still the one adopted."""
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def read_cmdline(pid: int) -> list[str] | None:
    """The argv of process ``pid`` from ``/proc``, or None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return [os.fsdecode(part) for part in data.split(b"\0")[:-1]]


def _read_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of process ``pid`` from ``/proc/<pid>/stat``, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) is parenthesised and may contain spaces: split after its last ')'.
    fields = data[data.rindex(")") + 2 :].split()
    return fields[0], fields[19]
