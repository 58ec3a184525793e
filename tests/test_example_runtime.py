"""The example runtime package ``examples/hello-runtime`` is what its sources say it is.

Its committed payload is the payload builder's layer of its ``app/`` (the build is reproducible, so
the bytes and the manifest's checksum are checked, not trusted), and its manifest is valid.
"""

from __future__ import annotations

import json
from pathlib import Path

from volant_core.guest.payload import PayloadInputs, build_payload
from volant_core.manifest import parse_manifest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hello-runtime"
PACKAGE = EXAMPLE / "volant_runtime_hello"


def test_the_committed_payload_is_the_build_of_app_and_the_manifest_names_its_checksum(
    tmp_path: Path,
) -> None:
    built = build_payload(PayloadInputs(EXAMPLE / "app", target="/app"), tmp_path, log=lambda _: None)
    assert (PACKAGE / "payload.cpio.gz").read_bytes() == built.path.read_bytes(), (
        "app/ changed: rebuild the payload (see examples/hello-runtime/README.md)"
    )
    manifest = parse_manifest(json.loads((PACKAGE / "manifest.json").read_text()))
    assert manifest.initramfs is not None and manifest.initramfs.checksum == built.checksum
    assert manifest.initramfs.url == "package://volant-runtime-hello/volant_runtime_hello/payload.cpio.gz"
