"""A thread-safe running count, for the parts of the core that count without ``prometheus_client``."""

from __future__ import annotations

import threading


class Tally:
    """A count that only grows, safe to add to from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def add(self) -> None:
        """Count one more."""
        with self._lock:
            self._value += 1

    @property
    def value(self) -> int:
        """How many were counted."""
        return self._value
