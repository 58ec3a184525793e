"""Keeping a VM's console log within its cap: rotated to ``console.log.1`` once it passes the cap.

QEMU appends to the log (``logappend=on``: it is opened ``O_APPEND``, never truncated), so earlier
boots' output survives a restart, and it can be rotated while QEMU writes: copied to the rotated
file, then truncated in place, QEMU's next write landing at the new end. What the guest writes
between the copy and the truncation (microseconds) is lost; nothing else is.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

#: How often a running VM's console log is measured against its cap (seconds).
CHECK_INTERVAL = 1.0


def rotated_path(path: Path) -> Path:
    """Where the previous part of the console log ``path`` is kept: ``console.log.1``."""
    return path.with_name(path.name + ".1")


def rotate_if_over(path: Path, max_bytes: int) -> bool:
    """Move the content of ``path`` to its rotated file (replacing the one before) when it holds
    more than ``max_bytes``; whether it did. A missing log is fine.
    """
    try:
        if path.stat().st_size <= max_bytes:
            return False
        rotated = rotated_path(path)
        partial = rotated.with_name(rotated.name + ".partial")
        partial.unlink(missing_ok=True)  # never write through a link a confined QEMU left there
        target_fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with path.open("rb") as source, os.fdopen(target_fd, "wb") as target:
            while chunk := source.read(1024 * 1024):
                target.write(chunk)
        os.replace(partial, rotated)
        os.truncate(path, 0)
    except FileNotFoundError:
        return False
    return True


def keep_capped(path: Path, max_bytes: int, running: Callable[[], bool], gone: threading.Event) -> None:
    """Rotate ``path`` whenever it passes ``max_bytes`` while ``running()``, until ``gone`` is set
    (checked every :data:`CHECK_INTERVAL` s, in a daemon thread of its own).
    """

    def loop() -> None:
        while not gone.wait(CHECK_INTERVAL) and running():
            try:
                rotate_if_over(path, max_bytes)
            except OSError as exc:
                log.warning("cannot rotate console log %s: %s", path, exc)

    threading.Thread(target=loop, name=f"console-log-{path.parent.name}", daemon=True).start()
