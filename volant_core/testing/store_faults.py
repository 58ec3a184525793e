"""Real store faults for tests: the state database write-locked by another process, a full disk."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Holds the write lock of the database named by argv[1] until its standard input closes.
_HOLD_LOCK = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("held", flush=True)
sys.stdin.read()
"""


@contextmanager
def database_locked(db_path: Path) -> Iterator[None]:
    """The SQLite database at ``db_path`` write-locked (``BEGIN IMMEDIATE``) by a ``sqlite3``
    connection in another process for the ``with`` block; that process ends with the block.
    """
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(db_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        if holder.stdout.readline() != "held\n":
            raise RuntimeError(f"could not lock {db_path} (see the error above)")
        yield
    finally:
        holder.communicate("")


def fill_disk(directory: Path) -> Path:
    """Write a file in ``directory`` until its file system is full; the file (delete it to free the space)."""
    filler = directory / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler
