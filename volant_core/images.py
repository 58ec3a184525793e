"""Reading host image files safely: regular files only, and the files a qcow2 image refers to.

A qcow2 image may name a backing file and an external data file; QEMU opens them
when it attaches the image, so a qcow2 handed to volantd could make it read any
host file. :func:`check_qcow2_chain` reads the headers itself (no ``qemu-img``):
the magic ``QFI\\xfb``, versions 2 and 3, the backing file name and the header
extensions (backing format ``0xe2792aca``, external data file ``0x44415441``) as QEMU
reads them (extensions up to the backing file name or the end of the first cluster,
names up to their first zero byte), resolves relative names against the directory of
the image naming them, and hands every referenced file to a ``confine`` callback that
refuses what it may not read.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from volant_core.errors import ValidationError

#: The first bytes of every qcow2 image.
QCOW2_MAGIC = b"QFI\xfb"
#: Most backing files followed from one image before it is refused.
MAX_CHAIN_DEPTH = 16
#: Longest backing file name QEMU accepts.
MAX_BACKING_NAME = 1023
#: The smallest and largest cluster sizes (as powers of two) QEMU opens.
MIN_CLUSTER_BITS, MAX_CLUSTER_BITS = 9, 21

_HEADER_V2 = struct.Struct(">4sIQII")  # magic, version, backing offset, backing size, cluster bits
_V2_LENGTH = 72
_V3_FIELDS = struct.Struct(">QQQII")  # incompatible, compatible, autoclear features, refcount order, length
_EXTENSION = struct.Struct(">II")  # type, length
_EXT_END = 0
_EXT_BACKING_FORMAT = 0xE2792ACA
_EXT_DATA_FILE = 0x44415441
_BACKING_FORMATS = ("raw", "qcow2")
_NOT_REGULAR = {
    stat.S_IFBLK: "a block device",
    stat.S_IFCHR: "a character device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


def open_regular(path: Path, *, field: str) -> BinaryIO:
    """Open ``path`` for reading, without following a symbolic link in its last component, and
    only when it is a regular file (checked with ``fstat`` on the open file); ValidationError
    naming ``field`` otherwise. Opening does not block on a FIFO.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        reason = "is a symbolic link" if os.path.islink(path) else f"cannot be read ({err.strerror})"
        raise ValidationError(f"{field}: {path} {reason}; name the image file itself", field=field) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = _NOT_REGULAR.get(stat.S_IFMT(mode), "not a regular file")
        raise ValidationError(f"{field}: {path} is {kind}; Volant attaches image files only", field=field)
    return os.fdopen(fd, "rb")


@dataclass(frozen=True)
class Qcow2Header:
    """What a qcow2 header says about other files: the backing file (and its format) and the
    external data file, as written in the image (possibly relative names)."""

    backing_file: str | None = None
    backing_format: str | None = None
    data_file: str | None = None


def read_qcow2_header(stream: BinaryIO, *, field: str) -> Qcow2Header | None:
    """The header of the qcow2 image open in ``stream``, or None when it is not a qcow2 image.

    ValidationError naming ``field`` for a qcow2 version other than 2 or 3 or a truncated header.
    """
    head = stream.read(_HEADER_V2.size)
    if not head.startswith(QCOW2_MAGIC):
        return None
    if len(head) < _HEADER_V2.size:
        raise ValidationError(f"{field}: truncated qcow2 header", field=field)
    _, version, backing_offset, backing_size, cluster_bits = _HEADER_V2.unpack(head)
    if version not in (2, 3):
        raise ValidationError(
            f"{field}: qcow2 version {version} is not supported (2 or 3); convert it with qemu-img convert",
            field=field,
        )
    if not MIN_CLUSTER_BITS <= cluster_bits <= MAX_CLUSTER_BITS:
        raise ValidationError(
            f"{field}: qcow2 cluster size 2^{cluster_bits} is not one QEMU opens "
            f"(2^{MIN_CLUSTER_BITS} to 2^{MAX_CLUSTER_BITS}); convert it with qemu-img convert",
            field=field,
        )
    stream.seek(0)
    # QEMU reads the header extensions up to the backing file name, or to the end of the first cluster.
    cluster = stream.read(1 << cluster_bits)[: backing_offset or None]
    header_length = _V2_LENGTH
    if version == 3:
        if len(cluster) < _V2_LENGTH + _V3_FIELDS.size:
            raise ValidationError(f"{field}: truncated qcow2 header", field=field)
        header_length = _V3_FIELDS.unpack_from(cluster, _V2_LENGTH)[4]
    extensions = _extensions(cluster, header_length)
    backing = None
    if backing_offset:
        if backing_size > MAX_BACKING_NAME:
            raise ValidationError(
                f"{field}: qcow2 backing file name longer than {MAX_BACKING_NAME}", field=field
            )
        stream.seek(backing_offset)
        backing = _text(stream.read(backing_size))
    return Qcow2Header(
        backing_file=backing,
        backing_format=_text(extensions.get(_EXT_BACKING_FORMAT)),
        data_file=_text(extensions.get(_EXT_DATA_FILE)),
    )


def _extensions(cluster: bytes, offset: int) -> dict[int, bytes]:
    """The header extensions from ``offset`` to the end marker (or the end of ``cluster``)."""
    found: dict[int, bytes] = {}
    while offset + _EXTENSION.size <= len(cluster):
        kind, length = _EXTENSION.unpack_from(cluster, offset)
        if kind == _EXT_END:
            break
        start = offset + _EXTENSION.size
        found[kind] = cluster[start : start + length]
        offset = start + (length + 7) // 8 * 8
    return found


def _text(data: bytes | None) -> str | None:
    """A name as QEMU reads it: up to its first zero byte (the bytes of a C string)."""
    return None if data is None else data.partition(b"\0")[0].decode("utf-8", "surrogateescape")


def check_qcow2_chain(image: Path, *, field: str, confine: Callable[[Path, str], Path]) -> None:
    """Refuse ``image`` (declared qcow2) unless it is a qcow2 image whose backing chain and
    external data files all pass ``confine``.

    ``confine(path, what)`` checks one referenced file (``what`` describes it for the
    message), raises ValidationError when it may not be read, and returns the file's
    resolved path. Relative names are resolved against the directory of the image that
    names them. A backing file of undeclared format must itself be qcow2 (QEMU would
    otherwise probe its format); declared formats other than raw and qcow2 are refused.
    """
    current, declared_raw = image, False
    for _ in range(MAX_CHAIN_DEPTH + 1):
        with open_regular(current, field=field) as stream:
            header = read_qcow2_header(stream, field=field)
        if header is None:
            if declared_raw:
                return
            hint = (
                "set its format to raw" if current == image else "declare its format (qemu-img rebase -F raw)"
            )
            raise ValidationError(
                f"{field}: {current} is {'declared' if current == image else 'used as'} qcow2 but is not "
                f"a qcow2 image; {hint}",
                field=field,
            )
        if header.data_file is not None:
            confine(_referenced(current, header.data_file, "data file", field), f"the data file of {current}")
        if header.backing_file is None:
            return
        name = _referenced(current, header.backing_file, "backing file", field)
        if header.backing_format not in (None, *_BACKING_FORMATS):
            raise ValidationError(
                f"{field}: the backing file of {current} has format {header.backing_format!r}; "
                "Volant attaches raw and qcow2 only",
                field=field,
            )
        current = confine(name, f"the backing file {header.backing_file!r} of {current}")
        declared_raw = header.backing_format == "raw"
    raise ValidationError(
        f"{field}: {image} has a backing chain deeper than {MAX_CHAIN_DEPTH}; "
        "flatten it with qemu-img convert",
        field=field,
    )


def _referenced(image: Path, name: str, what: str, field: str) -> Path:
    """The path of the file ``image`` names ``name`` (relative names start at the image's directory)."""
    head = name.split("/", 1)[0]
    if ":" in head or not name:
        raise ValidationError(
            f"{field}: {image} names the {what} {name!r}, which QEMU would not read as a plain file name; "
            "give it a path (qemu-img rebase -u -b PATH)",
            field=field,
        )
    return image.parent / name
