"""Boot media fetched by URL, verified by SHA-256 and kept in a cache keyed by checksum.

The core's own boot sources: local paths and ``file://`` URLs, and
``http(s)://`` downloads with a timeout and a size cap. A verified artifact is
stored once under ``<cache>/sha256/<digest>`` and reused by every VM.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO

from volant_core.confinement import local_path
from volant_core.errors import ValidationError
from volant_core.images import open_regular

#: Largest artifact a download may bring (bytes).
MAX_DOWNLOAD_BYTES = 16 * 1024**3
DOWNLOAD_TIMEOUT = 60.0
_CHUNK = 1024 * 1024


def expected_digest(checksum: str | None) -> str | None:
    """The lower-case hex SHA-256 named by ``checksum`` (``sha256:<hex>`` or ``<hex>``), or None."""
    if not checksum:
        return None
    algo, sep, digest = checksum.partition(":")
    if not sep:
        algo, digest = "sha256", checksum
    if algo.lower() != "sha256" or len(digest) != 64:
        raise ValidationError(
            f"checksum {checksum!r}: only sha256 is supported, as 'sha256:<64 hex digits>'", field="checksum"
        )
    return digest.lower()


def _store(src: BinaryIO, digest: str | None, cache_dir: Path, url: str) -> Path:
    """Copy ``src`` into the cache while hashing; refuse it if the digest does not match."""
    target_dir = cache_dir / "sha256"
    target_dir.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=".partial-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(_CHUNK):
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise ValidationError(f"{url}: larger than {MAX_DOWNLOAD_BYTES} bytes", field="url")
                hasher.update(chunk)
                out.write(chunk)
        actual = hasher.hexdigest()
        if digest and actual != digest:
            raise ValidationError(
                f"{url}: checksum mismatch (expected sha256:{digest}, got sha256:{actual})", field="checksum"
            )
        final = target_dir / actual
        os.replace(tmp_name, final)
        return final
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _cached(digest: str | None, cache_dir: Path) -> Path | None:
    if digest is None:
        return None
    path = cache_dir / "sha256" / digest
    return path if path.exists() else None


def fetch_file(url: str, checksum: str | None, cache_dir: Path) -> Path:
    """A local path or ``file://`` URL; verified and cached when a checksum is given, else used in place."""
    path = local_path(url)
    if path is None or not path.is_absolute():
        raise ValidationError(f"{url}: local artifact paths must be absolute", field="url")
    if not path.is_file():
        raise ValidationError(f"{url}: no such file on the host", field="url")
    digest = expected_digest(checksum)
    if digest is None:
        return path
    if hit := _cached(digest, cache_dir):
        return hit
    with open_regular(path, field="url") as src:
        return _store(src, digest, cache_dir, url)


def fetch_http(url: str, checksum: str | None, cache_dir: Path) -> Path:
    """Download an ``http(s)://`` artifact into the cache (a cached copy with the checksum is reused)."""
    digest = expected_digest(checksum)
    if hit := _cached(digest, cache_dir):
        return hit
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            return _store(response, digest, cache_dir, url)
    except OSError as err:
        raise ValidationError(f"{url}: download failed: {err}", field="url") from err
