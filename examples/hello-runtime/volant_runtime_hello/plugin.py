"""Registers the runtime manifest this package ships; volantd lists it with the package's name."""

from __future__ import annotations

from pathlib import Path

from volant_core.sdk import hookimpl


@hookimpl
def volant_runtime_manifests() -> list[Path]:
    """The hello-runtime manifest: its payload is ``payload.cpio.gz`` beside it (``package://``)."""
    return [Path(__file__).with_name("manifest.json")]
