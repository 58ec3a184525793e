"""One lock per VM name: operations on one VM are serialised, different VMs proceed in parallel."""

from __future__ import annotations

import threading


class NamedLocks:
    """Re-entrant locks created on first use, keyed by name."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}

    def __call__(self, name: str) -> threading.RLock:
        """The lock of ``name`` (the same object for the daemon's lifetime)."""
        with self._guard:
            lock = self._locks.get(name)
            if lock is None:
                lock = self._locks[name] = threading.RLock()
            return lock
