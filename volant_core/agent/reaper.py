"""One thread reaps every child (and, as PID 1, every orphan) and reports the exits we wait for.

Nothing else may call ``waitpid``: processes are started through :meth:`Reaper.spawn`, which
registers the pid before the reaper can see it exit, so no exit status is ever lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from typing import Any

from .wakeup import SignalSafeEvent


class ChildExit:
    """The exit of one watched child: ``wait`` for it, then read ``returncode``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._done = threading.Event()

    def _set(self, status: int) -> None:
        self.returncode = os.waitstatus_to_exitcode(status)
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the child exited within ``timeout`` seconds."""
        return self._done.wait(timeout)

    @property
    def exited(self) -> bool:
        """Whether the child has exited."""
        return self._done.is_set()


class Reaper:
    """Reaps children in a daemon thread; call :meth:`install` from the main thread first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: dict[int, ChildExit] = {}
        self._wake = SignalSafeEvent()  # set by the SIGCHLD handler too

    def install(self) -> None:
        """Wake the reaper on SIGCHLD (main thread only) and start its thread."""
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: self._wake.set())
        threading.Thread(target=self._run, name="reaper", daemon=True).start()

    def spawn(self, argv: list[str], **popen: Any) -> tuple[subprocess.Popen[bytes], ChildExit]:
        """Start ``argv`` with :class:`subprocess.Popen` and watch its exit (never ``Popen.wait``)."""
        with self._lock:
            process = subprocess.Popen(argv, **popen)
            child = self._watched[process.pid] = ChildExit(process.pid)
        self._wake.set()
        return process, child

    def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                self._wake.wait()
                continue
            except InterruptedError:
                continue
            with self._lock:
                child = self._watched.pop(pid, None)
            if child is not None:
                child._set(status)
