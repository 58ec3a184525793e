"""One lock per VM name: operations on one VM are serialised, different VMs proceed in parallel.

A name's lock exists only while someone holds it or waits for it: the table does not grow with
every name ever asked for (a client asking for many VMs that do not exist, say).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol


class Lock(Protocol):
    """What :class:`NamedLocks` needs of a lock (``threading.Lock`` and ``RLock`` both fit)."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool:
        """Take the lock."""

    def release(self) -> None:
        """Give the lock back."""


@dataclass
class _Entry:
    """A name's lock and how many callers hold it or wait for it."""

    lock: Lock
    users: int = field(default=0)


class NamedLocks:
    """Locks made by ``factory`` on first use, keyed by name, forgotten when no caller uses them."""

    def __init__(self, factory: Callable[[], Lock]) -> None:
        """Make each name's lock with ``factory`` (e.g. ``threading.RLock``)."""
        self._factory = factory
        self._guard = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Hold the lock of ``name`` for the ``with`` block (waiting for it as long as it takes)."""
        lock = self._enter(name)
        try:
            lock.acquire()
            try:
                yield
            finally:
                lock.release()
        finally:
            self._leave(name)

    def try_hold(self, name: str) -> Callable[[], None] | None:
        """Take the lock of ``name`` if it is free: what gives it back, or None when it is taken."""
        lock = self._enter(name)
        if not lock.acquire(blocking=False):
            self._leave(name)
            return None

        def give_back() -> None:
            lock.release()
            self._leave(name)

        return give_back

    def __len__(self) -> int:
        """How many names have a lock now (held or waited for)."""
        with self._guard:
            return len(self._entries)

    def _enter(self, name: str) -> Lock:
        with self._guard:
            entry = self._entries.get(name)
            if entry is None:
                entry = self._entries[name] = _Entry(self._factory())
            entry.users += 1
            return entry.lock

    def _leave(self, name: str) -> None:
        with self._guard:
            entry = self._entries[name]
            entry.users -= 1
            if entry.users == 0:
                del self._entries[name]
