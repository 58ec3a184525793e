"""A pure-Python writer (and a small reader) for the newc ("070701") cpio format the Linux initramfs
loader reads.

Archives are reproducible: every entry has uid/gid 0, mtime 0 and an inode number given by its
position, so the same entries always give the same bytes. Linux unpacks several archives
concatenated into one initramfs file in order, later entries overriding earlier ones, which is how
a small per-VM layer (see :func:`file_layer`) is put over the base image.
"""

from __future__ import annotations

import gzip
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

EntryKind = Literal["file", "dir", "symlink", "chardev"]

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_LEVEL = 6
_HEADER_LENGTH = len(_MAGIC) + 13 * 8  # magic, then 13 fields of 8 hex digits
_KIND_BITS: dict[str, int] = {
    "file": stat.S_IFREG,
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "chardev": stat.S_IFCHR,
}


@dataclass(frozen=True)
class CpioEntry:
    """One archive member.

    ``path`` is relative to the archive root (a leading ``/`` is dropped), ``mode`` holds the
    permission bits only; the file type comes from ``kind``. ``data`` is a file's content,
    ``target`` a symlink's target and ``rdev`` a character device's (major, minor).
    """

    path: str
    mode: int = 0o644
    kind: EntryKind = "file"
    data: bytes = b""
    target: str = ""
    rdev: tuple[int, int] = (0, 0)

    @classmethod
    def file(cls, path: str, data: bytes, mode: int = 0o644) -> CpioEntry:
        """A regular file."""
        return cls(path, mode, "file", data=data)

    @classmethod
    def directory(cls, path: str, mode: int = 0o755) -> CpioEntry:
        """A directory."""
        return cls(path, mode, "dir")

    @classmethod
    def symlink(cls, path: str, target: str) -> CpioEntry:
        """A symbolic link to ``target``."""
        return cls(path, 0o777, "symlink", target=target)

    @classmethod
    def chardev(cls, path: str, major: int, minor: int, mode: int = 0o600) -> CpioEntry:
        """A character device node (for example ``dev/console``, 5:1)."""
        return cls(path, mode, "chardev", rdev=(major, minor))

    @property
    def name(self) -> str:
        """The member name as stored: no leading slash, ``.`` for the root."""
        return self.path.strip("/") or "."

    @property
    def payload(self) -> bytes:
        """The bytes stored after the header: file content or symlink target."""
        if self.kind == "file":
            return self.data
        if self.kind == "symlink":
            return self.target.encode()
        return b""


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _member(ino: int, name: str, mode: int, payload: bytes, rdev: tuple[int, int], nlink: int) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, 0, len(payload), 0, 0, rdev[0], rdev[1], len(encoded), 0)
    header = _MAGIC + b"".join(b"%08X" % value for value in fields)
    head = header + encoded
    return head + _pad(len(head)) + payload + _pad(len(payload))


def newc_members(entries: Iterable[CpioEntry]) -> Iterator[bytes]:
    """The serialised members of ``entries``, in the order given, then the trailer: the pieces of
    :func:`newc_archive`, for writing an archive piece by piece.
    """
    for ino, entry in enumerate(entries, start=1):
        mode = _KIND_BITS[entry.kind] | (entry.mode & 0o7777)
        nlink = 2 if entry.kind == "dir" else 1
        yield _member(ino, entry.name, mode, entry.payload, entry.rdev, nlink)
    yield _member(0, _TRAILER, 0, b"", (0, 0), 1)


def newc_archive(entries: Iterable[CpioEntry]) -> bytes:
    """Serialise ``entries``, in the order given, into an uncompressed newc archive with its trailer."""
    return b"".join(newc_members(entries))


def gzip_bytes(data: bytes) -> bytes:
    """Gzip ``data`` reproducibly (no timestamp in the header)."""
    return gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)


def gzip_writer(fileobj: BinaryIO) -> gzip.GzipFile:
    """A gzip stream onto ``fileobj`` as reproducible as :func:`gzip_bytes` (no name, no timestamp)."""
    return gzip.GzipFile(filename="", mode="wb", fileobj=fileobj, compresslevel=_GZIP_LEVEL, mtime=0)


def parent_dirs(paths: Iterable[str]) -> list[str]:
    """Every ancestor directory of ``paths`` (without the root), parents before children."""
    found: set[str] = set()
    for path in paths:
        parts = path.strip("/").split("/")[:-1]
        found.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(found, key=lambda d: (d.count("/"), d))


def with_parents(entries: list[CpioEntry]) -> list[CpioEntry]:
    """``entries`` with every directory they need, all directories first, parents before children."""
    directories = {e.name: e for e in entries if e.kind == "dir"}
    for name in parent_dirs(e.name for e in entries):
        directories.setdefault(name, CpioEntry.directory(name))
    ordered = [directories[name] for name in parent_dirs(f"{d}/x" for d in directories)]
    return ordered + [e for e in entries if e.kind != "dir"]


def write_archive(
    entries: list[CpioEntry], path: Path, progress: Callable[[int, int], None] | None = None
) -> None:
    """Write ``entries`` to ``path`` as a reproducible gzip-compressed newc archive;
    ``progress(done, total)`` hears the bytes compressed so far.
    """
    members = list(newc_members(entries))
    total = sum(map(len, members))
    done = 0
    with path.open("wb") as raw, gzip_writer(raw) as out:
        for member in members:
            out.write(member)
            done += len(member)
            if progress is not None:
                progress(done, total)


def file_layer(files: Mapping[str, bytes], *, compress: bool = True) -> bytes:
    """An archive holding ``files`` (path -> content, mode 0644) and their parent directories.

    Meant to be appended to a base initramfs, e.g. ``{"volant/manifest.json": ...}``.
    """
    entries = [CpioEntry.directory(d) for d in parent_dirs(files)]
    entries += [CpioEntry.file(path, files[path]) for path in sorted(files)]
    archive = newc_archive(entries)
    return gzip_bytes(archive) if compress else archive


def initramfs_files(data: bytes) -> dict[str, bytes]:
    """The regular files of an initramfs as Linux unpacks it: path (``/``-rooted) -> content.

    ``data`` is any concatenation of newc archives, gzip-compressed or not,
    with NUL padding between them; a later archive's file replaces an earlier
    one of the same path (the way a per-VM layer overrides the base image).
    Raises ``ValueError`` on anything else (another compression, a corrupt header).
    """
    files: dict[str, bytes] = {}
    _unpack(data, files)
    return files


def _unpack(data: bytes, files: dict[str, bytes]) -> None:
    position = 0
    while position < len(data):
        if data[position] == 0:
            position += 1
        elif data.startswith(_GZIP_MAGIC, position):
            stream = zlib.decompressobj(wbits=31)
            try:
                inner = stream.decompress(data[position:])
            except zlib.error as exc:
                raise ValueError(f"corrupt gzip data at byte {position}: {exc}") from None
            if not stream.eof:
                raise ValueError(f"truncated gzip data at byte {position}")
            _unpack(inner, files)
            position = len(data) - len(stream.unused_data)
        elif data.startswith(_MAGIC, position):
            position = _read_archive(data, position, files)
        else:
            raise ValueError(f"not a newc archive or gzip stream at byte {position}")


def _read_archive(data: bytes, start: int, files: dict[str, bytes]) -> int:
    """Read one archive starting at ``start`` into ``files``; return the offset after its trailer.

    Names and contents are padded to 4 bytes from the start of the archive.
    """
    position = start
    while True:
        header = data[position : position + _HEADER_LENGTH]
        if len(header) < _HEADER_LENGTH or not header.startswith(_MAGIC):
            raise ValueError(f"bad newc header at byte {position}")
        try:
            fields = [int(header[i : i + 8], 16) for i in range(len(_MAGIC), _HEADER_LENGTH, 8)]
        except ValueError:
            raise ValueError(f"bad newc header at byte {position}") from None
        mode, size, name_size = fields[1], fields[6], fields[11]
        name_start = position + _HEADER_LENGTH
        name = data[name_start : name_start + name_size].rstrip(b"\0").decode(errors="surrogateescape")
        body = name_start + name_size + (-(name_start + name_size - start) % 4)
        if body + size > len(data):
            raise ValueError(f"newc member {name!r} runs past the end of the data")
        position = body + size + (-(body + size - start) % 4)
        if name == _TRAILER:
            return position
        if stat.S_ISREG(mode):
            files["/" + name.strip("/")] = data[body : body + size]
