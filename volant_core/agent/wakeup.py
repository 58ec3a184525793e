"""A flag that a signal handler may raise, for a thread (or the main thread itself) waiting on it.

``threading.Event.set`` takes a lock. Python runs a signal handler in the main thread between two
bytecodes, and the main thread may hold that very lock at that moment: inside ``Event.wait``, or
inside an earlier handler's ``set`` when a second signal comes (a dying parent sends its death
signal once per thread; children exit in bursts). The handler then waits for a lock its own thread
holds, for ever. :class:`SignalSafeEvent` takes no lock to be set: it writes a byte to a pipe.
"""

from __future__ import annotations

import contextlib
import os
import select
import weakref


class SignalSafeEvent:
    """``threading.Event``'s ``set``, ``clear``, ``is_set`` and ``wait``, with a ``set`` that is
    safe in a signal handler (no lock: a flag and a byte written to a non-blocking pipe).
    """

    def __init__(self) -> None:
        self._flag = False
        self._read_end, self._write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        weakref.finalize(self, _close_pipe, self._read_end, self._write_end)

    def set(self) -> None:
        """Raise the flag and wake every waiter."""
        self._flag = True
        with contextlib.suppress(BlockingIOError):  # the pipe is full: waiters are woken already
            os.write(self._write_end, b"\0")

    def clear(self) -> None:
        """Lower the flag and drop the wake-ups written so far."""
        self._flag = False
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_end, 4096):
                pass

    def is_set(self) -> bool:
        """Whether the flag is raised."""
        return self._flag

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the flag is raised or ``timeout`` seconds pass; whether it is raised."""
        if not self._flag:
            select.select([self._read_end], [], [], timeout)
        return self._flag


def _close_pipe(*descriptors: int) -> None:
    """Close a collected event's pipe."""
    for descriptor in descriptors:
        os.close(descriptor)
