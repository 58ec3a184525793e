"""Console output shared by every thread: whole lines, never interleaved."""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()


def say(message: str) -> None:
    """Write ``message`` as one line to standard error (the serial console when PID 1)."""
    data = (message.rstrip("\n") + "\n").encode(errors="replace")
    with _lock:
        try:
            os.write(2, data)
        except OSError:
            pass
