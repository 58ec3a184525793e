"""The runtime manifest: its encodings on the kernel command line and how kestrel finds it.

On the command line the value is base64url without padding of gzip(compact JSON); plain
base64url JSON is accepted too. A manifest too big for the command line arrives as a JSON file
in an extra initramfs layer.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .constants import CMDLINE_MANIFEST_KEY

_GZIP_MAGIC = b"\x1f\x8b"


class ManifestError(ValueError):
    """A manifest that is absent or cannot be decoded."""


@dataclass(frozen=True)
class ManifestResult:
    """The manifest kestrel found (``manifest``), or why there is none (``error``)."""

    manifest: dict[str, Any] | None
    error: str | None = None
    source: str | None = None


def parse_json_object(data: bytes) -> dict[str, Any]:
    """``data`` parsed as a JSON object, or :class:`ManifestError`."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ManifestError("manifest is not a JSON object")
    return value


def decode_cmdline_value(value: str) -> dict[str, Any]:
    """Decode a ``volant.manifest=`` value (gzip JSON, or plain JSON as a fallback)."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ManifestError(f"manifest is not base64url: {exc}") from exc
    if raw.startswith(_GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ManifestError(f"manifest gzip data is corrupt: {exc}") from exc
    return parse_json_object(raw)


def cmdline_value(cmdline: str, key: str = CMDLINE_MANIFEST_KEY) -> str | None:
    """The value of ``<key>=`` on a kernel command line (``volant.manifest`` by default), if present."""
    prefix = key + "="
    for word in cmdline.split():
        if word.startswith(prefix):
            return word[len(prefix) :]
    return None


def load_manifest(cmdline: str | None, manifest_file: Path) -> ManifestResult:
    """Find the manifest: the command line value first, else ``manifest_file``. Never raises."""
    value = cmdline_value(cmdline or "")
    try:
        if value is not None:
            return ManifestResult(decode_cmdline_value(value), source="cmdline")
        if manifest_file.is_file():
            return ManifestResult(parse_json_object(manifest_file.read_bytes()), source=str(manifest_file))
    except (ManifestError, OSError) as exc:
        return ManifestResult(None, str(exc))
    return ManifestResult(
        None, f"no {CMDLINE_MANIFEST_KEY}= on the kernel command line and no {manifest_file}"
    )
