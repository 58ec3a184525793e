"""The newc writer, checked by unpacking its archives with a real cpio (busybox)."""

from __future__ import annotations

import gzip
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from volant_core.guest import CpioEntry, file_layer, newc_archive

BUSYBOX = shutil.which("busybox") or "busybox"
#: For the tests that unpack or list an archive with busybox's cpio.
needs_busybox = pytest.mark.skipif(
    shutil.which("busybox") is None, reason="busybox is not installed (apt-get install busybox-static)"
)


def unpack(archive: bytes, destination: Path) -> None:
    """Extract ``archive`` into ``destination`` with ``busybox cpio -i``."""
    destination.mkdir()
    subprocess.run([BUSYBOX, "cpio", "-i", "-d", "-m"], input=archive, cwd=destination, check=True)


def listing(archive: bytes) -> list[str]:
    """``busybox cpio -tv`` of ``archive``, one line per member."""
    done = subprocess.run([BUSYBOX, "cpio", "-t", "-v"], input=archive, capture_output=True, check=True)
    return done.stdout.decode().splitlines()


ENTRIES = [
    CpioEntry.directory("etc"),
    CpioEntry.directory("/usr/bin/", 0o700),
    CpioEntry.file("etc/empty", b""),
    CpioEntry.file("etc/odd", b"x" * 5, 0o600),
    CpioEntry.file("/usr/bin/tool", bytes(range(256)) * 3 + b"\x00\xff\x01", 0o755),
    CpioEntry.symlink("usr/bin/alias", "tool"),
    CpioEntry.chardev("console", 5, 1),
]


@needs_busybox
def test_round_trip_contents_and_modes(tmp_path: Path) -> None:
    unpack(newc_archive(ENTRIES), tmp_path / "out")
    root = tmp_path / "out"
    for entry in ENTRIES:
        path = root / entry.name
        if entry.kind == "file":
            assert path.read_bytes() == entry.data
            assert stat.S_IMODE(path.stat().st_mode) == entry.mode
        elif entry.kind == "dir":
            assert path.is_dir() and stat.S_IMODE(path.stat().st_mode) == entry.mode
        elif entry.kind == "symlink":
            assert path.readlink() == Path(entry.target)
    assert (root / "usr/bin/alias").read_bytes() == ENTRIES[4].data


@needs_busybox
def test_listing_shows_types_owner_and_fixed_mtime() -> None:
    lines = listing(newc_archive(ENTRIES))
    assert len(lines) == len(ENTRIES)
    assert any(line.startswith("crw-------") and line.endswith(" console") for line in lines)
    assert any(line.startswith("lrwxrwxrwx") and line.endswith("usr/bin/alias -> tool") for line in lines)
    assert all(" 0/0 " in line and "1970-01-01" in line for line in lines)


def test_archives_are_reproducible() -> None:
    assert newc_archive(ENTRIES) == newc_archive(list(ENTRIES))
    files = {"volant/manifest.json": b"{}", "a/b/c": b"c"}
    assert file_layer(files) == file_layer(dict(reversed(files.items())))


@needs_busybox
def test_file_layer_creates_parents(tmp_path: Path) -> None:
    layer = file_layer({"volant/deep/manifest.json": b'{"a": 1}', "/top": b"t"})
    unpack(gzip.decompress(layer), tmp_path / "out")
    assert (tmp_path / "out/volant/deep/manifest.json").read_bytes() == b'{"a": 1}'
    assert (tmp_path / "out/top").read_bytes() == b"t"
    assert file_layer({"x": b"y"}, compress=False).startswith(b"070701")
