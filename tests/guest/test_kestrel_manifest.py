"""How kestrel finds and decodes its manifest: kernel command line first, then the layer file."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest

from volant_core.agent.manifest import (
    ManifestError,
    cmdline_value,
    decode_cmdline_value,
    load_manifest,
)
from volant_core.manifest import encode_for_guest, manifest_json, parse_manifest

MANIFEST = {"name": "demo", "workload": {"entrypoint": ["/bin/app", "--flag"], "env": {"K": "välue"}}}


def b64url(data: bytes) -> str:
    """base64url without padding, as on the command line."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def gz_value(document: object) -> str:
    """The spec'd encoding: base64url(gzip(compact JSON))."""
    return b64url(gzip.compress(json.dumps(document, separators=(",", ":")).encode()))


def test_decodes_gzip_form() -> None:
    assert decode_cmdline_value(gz_value(MANIFEST)) == MANIFEST


def test_decodes_raw_json_fallback() -> None:
    assert decode_cmdline_value(b64url(json.dumps(MANIFEST).encode())) == MANIFEST


def test_decodes_the_host_encoder_output() -> None:
    host = parse_manifest(
        {
            "name": "demo",
            "version": "1.0.0",
            "workload": {"type": "http", "base_url": "http://127.0.0.1:8000", "entrypoint": ["/bin/app"]},
        }
    )
    assert decode_cmdline_value(encode_for_guest(host)) == json.loads(manifest_json(host))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!!!not-base64!!!", "base64url"),
        (b64url(b"\x1f\x8b\x08\x00garbage"), "gzip"),
        (b64url(b"{not json"), "JSON"),
        (b64url(b"[1, 2]"), "object"),
        (b64url(gzip.compress(b"42")), "object"),
    ],
)
def test_rejects_undecodable_values(value: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        decode_cmdline_value(value)


def test_cmdline_value_among_other_arguments() -> None:
    line = "console=ttyS0 panic=-1 volant.manifest=abc_-D volant.other=1\n"
    assert cmdline_value(line) == "abc_-D"
    assert cmdline_value("console=ttyS0 volant.manifests=x") is None


def test_command_line_wins_over_file(tmp_path: Path) -> None:
    file = tmp_path / "manifest.json"
    file.write_text(json.dumps({"name": "from-file"}))
    found = load_manifest(f"quiet volant.manifest={gz_value(MANIFEST)}", file)
    assert (found.manifest, found.source, found.error) == (MANIFEST, "cmdline", None)


def test_file_when_command_line_has_none(tmp_path: Path) -> None:
    big = {"name": "big", "env": {f"K{i}": "v" * 100 for i in range(200)}}
    file = tmp_path / "manifest.json"
    file.write_text(json.dumps(big))
    found = load_manifest("console=ttyS0", file)
    assert found.manifest == big and found.source == str(file)


@pytest.mark.parametrize("cmdline", ["console=ttyS0", "volant.manifest=%%%"])
def test_missing_or_bad_manifest_is_an_error_result(tmp_path: Path, cmdline: str) -> None:
    found = load_manifest(cmdline, tmp_path / "absent.json")
    assert found.manifest is None and found.error


def test_bad_file_is_an_error_result(tmp_path: Path) -> None:
    file = tmp_path / "manifest.json"
    file.write_bytes(b"\xff\xfe not json")
    found = load_manifest(None, file)
    assert found.manifest is None and "JSON" in (found.error or "")
