"""Real store faults for tests: the state database write-locked by another process, a full disk
(a small tmpfs, mounted as root, filled up)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

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


@contextmanager
def small_tmpfs(size: str, prefix: str = "volant-full-") -> Iterator[Path]:
    """A tmpfs of ``size`` (``mount -o size=``, e.g. ``64k``, ``16m``) on a new short-named directory
    for the ``with`` block, unmounted and removed after it; the calling test is skipped when not
    run as root (only root may mount).
    """
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
        try:
            yield mount
        finally:
            subprocess.run(["umount", "--lazy", str(mount)], check=True)
    finally:
        shutil.rmtree(mount, ignore_errors=True)
