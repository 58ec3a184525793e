"""One lock per VM name: operations on one VM are serialised, different VMs proceed in parallel."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

L = TypeVar("L")


class NamedLocks(Generic[L]):
    """Locks made by ``factory`` on first use, keyed by name."""

    def __init__(self, factory: Callable[[], L]) -> None:
        """Make each name's lock with ``factory`` (e.g. ``threading.RLock``)."""
        self._factory = factory
        self._guard = threading.Lock()
        self._locks: dict[str, L] = {}

    def __call__(self, name: str) -> L:
        """The lock of ``name`` (the same object for the daemon's lifetime)."""
        with self._guard:
            lock = self._locks.get(name)
            if lock is None:
                lock = self._locks[name] = self._factory()
            return lock
