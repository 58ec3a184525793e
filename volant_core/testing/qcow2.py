"""Writing qcow2 image headers for tests, without ``qemu-img``.

:func:`write_qcow2` writes what QEMU writes at the start of an image: the version 2 or 3
header, its header extensions (backing format, external data file) and the backing file
name. The image has no data clusters; it is enough for anything that reads headers
(:mod:`volant_core.images`), not for booting.
"""

from __future__ import annotations

import struct
from pathlib import Path

from volant_core.images import QCOW2_MAGIC

_CLUSTER_BITS = 16
_V2_LENGTH = 72
_V3_LENGTH = 104
_INCOMPATIBLE_DATA_FILE = 1 << 2


def _extension(kind: int, data: bytes) -> bytes:
    return struct.pack(">II", kind, len(data)) + data + b"\0" * (-len(data) % 8)


def write_qcow2(
    path: Path,
    *,
    version: int = 3,
    backing: str | None = None,
    backing_format: str | None = None,
    data_file: str | None = None,
) -> Path:
    """Write a qcow2 header to ``path`` naming ``backing`` (and its format) and ``data_file``."""
    extensions = b""
    if backing_format is not None:
        extensions += _extension(0xE2792ACA, backing_format.encode())
    if data_file is not None:
        extensions += _extension(0x44415441, data_file.encode())
    extensions += _extension(0, b"")
    length = _V3_LENGTH if version >= 3 else _V2_LENGTH
    name = (backing or "").encode()
    backing_offset = length + len(extensions) if backing else 0
    header = struct.pack(
        ">4sIQIIQIIQQIIQ",
        QCOW2_MAGIC,
        version,
        backing_offset,
        len(name),
        _CLUSTER_BITS,
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
    path.write_bytes(header + extensions + name)
    return path
