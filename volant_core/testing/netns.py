"""A throw-away network namespace for the tests of network plugins, which fails the test on leaks.

:func:`network_namespace` creates a uniquely named namespace (``lo`` up) and
yields a :class:`NetworkNamespace`:

* ``ns.enter()`` moves the CURRENT THREAD into the namespace and back at exit.
  Threads and child processes started inside inherit the namespace, so
  ``with ns.enter(), running_daemon() as daemon:`` runs volantd, its threads
  and its children (QEMU, dnsmasq) inside;
* ``ns.popen(argv, **kwargs)`` starts a child process inside;
* ``ns.ipr`` is a pyroute2 ``IPRoute`` of the namespace (links, addresses, routes).

At exit every process still in the namespace is killed, the namespace is
deleted, and :class:`NamespaceLeak` is raised, naming them, when the test left
a process running in it or a link other than ``lo`` behind. Every operation
uses pyroute2 (installed with ``volant-core[testing]``); none runs ``ip``.
Creating a namespace needs root (``CAP_SYS_ADMIN``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute, netns

from volant_core.testing.waiting import eventually

#: Seconds leaked processes have to die after SIGKILL, and this process's own threads
#: (a server's request handlers) to leave the namespace before they count as leaked.
SETTLE_TIMEOUT = 10.0


class NamespaceLeak(AssertionError):
    """A test left processes, threads or links in its network namespace (all removed since)."""

    def __init__(self, name: str, leaks: Sequence[str]) -> None:
        self.leaks = list(leaks)
        super().__init__(f"network namespace {name} leaked: " + "; ".join(self.leaks))


def _identity(path: str | Path) -> tuple[int, int] | None:
    """``(device, inode)`` of a namespace file, or None when it is gone (or the task is a zombie)."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _command_line(pid: int) -> str:
    """What ``ps`` would show for ``pid``: its argv, else its name in brackets."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        shown = " ".join(os.fsdecode(arg) for arg in argv if arg)
        return shown or f"[{Path(f'/proc/{pid}/comm').read_text().strip()}]"
    except OSError:
        return "?"


class NetworkNamespace:
    """A network namespace made by :func:`network_namespace`; see the module docstring."""

    def __init__(self, name: str, settle_timeout: float = SETTLE_TIMEOUT) -> None:
        self.name = name
        self._settle_timeout = settle_timeout
        self._identity = _identity(Path(netns.NETNS_RUN_DIR) / name)
        #: pyroute2 ``IPRoute`` bound to the namespace (closed at exit).
        self.ipr: IPRoute = IPRoute(netns=name, flags=0)
        (lo,) = self.ipr.link_lookup(ifname="lo")
        self.ipr.link("set", index=lo, state="up")

    @contextlib.contextmanager
    def enter(self) -> Iterator[None]:
        """Move the current thread into the namespace for the ``with`` block, then back where it was."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            netns.setns(self.name, flags=0)
            try:
                yield
            finally:
                netns.setns(home)
        finally:
            os.close(home)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the namespace (``kwargs`` as for :class:`subprocess.Popen`)."""
        with self.enter():
            return subprocess.Popen(argv, **kwargs)

    def processes(self) -> dict[int, str]:
        """Other processes with a thread in the namespace: pid -> command line."""
        found = {}
        for task in Path("/proc").glob("[0-9]*/task/[0-9]*/ns/net"):
            pid = int(task.parts[2])
            if pid != os.getpid() and _identity(task) == self._identity:
                found[pid] = _command_line(pid)
        return found

    def own_threads(self) -> list[str]:
        """Threads of this process still in the namespace, by name."""
        names = {thread.native_id: thread.name for thread in threading.enumerate()}
        return [
            names.get(int(task.parts[-3]), f"thread {task.parts[-3]}")
            for task in Path("/proc/self/task").glob("[0-9]*/ns/net")
            if _identity(task) == self._identity
        ]

    def links(self) -> list[str]:
        """Names of the namespace's links other than ``lo``."""
        return [name for link in self.ipr.get_links() if (name := link.get("ifname")) != "lo"]

    def close(self) -> list[str]:
        """Kill every process in the namespace, delete it, and say what the test leaked in it."""
        processes: dict[int, str] = {}

        def kill_all() -> bool:
            """SIGKILL what runs inside (again: a dying parent may have forked); True once nothing does."""
            found = self.processes()
            processes.update(found)
            for pid in found:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return not found

        try:
            eventually(kill_all, f"the processes of {self.name} to exit", timeout=self._settle_timeout)
            try:
                eventually(lambda: not self.own_threads(), "threads to leave", timeout=self._settle_timeout)
            except AssertionError:
                pass  # reported below
            leaks = [f"process {pid} ({argv})" for pid, argv in processes.items()]
            leaks += [f"thread {thread!r} of this process" for thread in self.own_threads()]
            leaks += [f"link {link}" for link in self.links()]
        finally:
            self.ipr.close()
            netns.remove(self.name)
        return leaks


@contextlib.contextmanager
def network_namespace(
    prefix: str = "volant-test", *, settle_timeout: float = SETTLE_TIMEOUT
) -> Iterator[NetworkNamespace]:
    """A new network namespace named ``<prefix>-<random>``; deleted at exit, raising
    :class:`NamespaceLeak` when the test left processes, threads or links in it (when the
    ``with`` block raised, its own exception is the one that propagates). ``settle_timeout``:
    see :data:`SETTLE_TIMEOUT`.
    """
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    netns.create(name)
    try:
        namespace = NetworkNamespace(name, settle_timeout)
    except BaseException:
        netns.remove(name)
        raise
    try:
        yield namespace
    finally:
        leaks = namespace.close()
    if leaks:
        raise NamespaceLeak(name, leaks)
