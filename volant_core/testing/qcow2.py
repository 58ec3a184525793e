"""Writing qcow2 image headers for tests, without ``qemu-img``.

:func:`write_qcow2` writes what QEMU writes at the start of an image: the version 2 or 3
header, its header extensions (backing format, external data file) and the backing file
name, in a first cluster padded with zeros to its full size. The image has no data
clusters; it is enough for anything that reads headers (:mod:`volant_core.images`), not
for booting. Names are written as the bytes the file system uses (``os.fsencode``), so a
name that is not UTF-8 can be given as ``os.fsdecode(raw_bytes)``.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from volant_core.images import QCOW2_MAGIC

_CLUSTER_BITS = 16
_V2_LENGTH = 72
_V3_LENGTH = 104
_INCOMPATIBLE_DATA_FILE = 1 << 2
#: A header extension type QEMU and Volant skip (none is registered with this value).
UNKNOWN_EXTENSION = 0x12345678


def _extension(kind: int, data: bytes) -> bytes:
    return struct.pack(">II", kind, len(data)) + data + b"\0" * (-len(data) % 8)


def write_qcow2(
    path: Path,
    *,
    version: int = 3,
    backing: str | None = None,
    backing_format: str | None = None,
    data_file: str | None = None,
    unknown_extension: bytes | None = None,
    cluster_bits: int = _CLUSTER_BITS,
    name_before_extensions: bool = False,
) -> Path:
    """Write a qcow2 header to ``path`` naming ``backing`` (and its format) and ``data_file``.

    ``backing=""`` records a backing file with an empty name. ``unknown_extension`` is the
    data of an extension of type :data:`UNKNOWN_EXTENSION`, written before the others.
    ``name_before_extensions`` writes the backing file name (padded to 8 bytes) right after
    the header and the extensions after it, where QEMU does not look for them.
    """
    extensions = b""
    if unknown_extension is not None:
        extensions += _extension(UNKNOWN_EXTENSION, unknown_extension)
    if backing_format is not None:
        extensions += _extension(0xE2792ACA, os.fsencode(backing_format))
    if data_file is not None:
        extensions += _extension(0x44415441, os.fsencode(data_file))
    extensions += _extension(0, b"")
    length = _V3_LENGTH if version >= 3 else _V2_LENGTH
    name = os.fsencode(backing or "")
    if backing is None:
        backing_offset = 0
    elif name_before_extensions:
        backing_offset = length
        extensions = name + b"\0" * (-len(name) % 8) + extensions
    else:
        backing_offset = length + len(extensions)
    header = struct.pack(
        ">4sIQIIQIIQQIIQ",
        QCOW2_MAGIC,
        version,
        backing_offset,
        len(name),
        cluster_bits,
        1 << 20,  # virtual size
        0,  # no encryption
        0,  # L1 entries
        0,  # L1 table offset
        0,  # refcount table offset
        0,  # refcount table clusters
        0,  # snapshots
        0,  # snapshot table offset
    )
    if version >= 3:
        incompatible = _INCOMPATIBLE_DATA_FILE if data_file is not None else 0
        header += struct.pack(">QQQII", incompatible, 0, 0, 4, _V3_LENGTH)
    trailer = b"" if name_before_extensions else name
    path.write_bytes((header + extensions + trailer).ljust(1 << cluster_bits, b"\0"))
    return path
