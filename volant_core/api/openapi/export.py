"""The committed OpenAPI document, ``docs/api-reference/openapi.json``, and how it is generated.

The document is asked from a real volantd: started in-process with throwaway
state, on a loopback port, with no plugin but the core (so what happens to be
installed does not leak into it), then stopped. Its ``servers`` entry is the
default address, so the file is the same on every machine.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import importlib_metadata

from volant_core.api.openapi import DEFAULT_OUTPUT
from volant_core.api.openapi.generator import DOCUMENT_PATH
from volant_core.daemon import build_daemon
from volant_core.plugins import ENTRY_POINT_GROUP, load_plugins
from volant_core.settings import load_settings

#: Where the document is committed, relative to the repository root.
#: ``servers`` of the committed document: volantd's default address.
DEFAULT_SERVER = "http://127.0.0.1:7777"
#: The command that regenerates the committed document.
REGENERATE = "uv run volant-openapi-export"


def core_document() -> dict[str, Any]:
    """The OpenAPI document of a volantd running the core alone, served at :data:`DEFAULT_SERVER`."""
    state = Path(tempfile.mkdtemp(prefix="volant-openapi-"))
    try:
        settings = load_settings({}, state_dir=state, api_listen="127.0.0.1:0")
        every_plugin = {ep.name for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP)}
        daemon = build_daemon(settings, plugins=load_plugins(disabled=every_plugin))
        daemon.start()
        try:
            host, port = daemon.server.address
            with urllib.request.urlopen(f"http://{host}:{port}{DOCUMENT_PATH}", timeout=60) as answer:
                document: dict[str, Any] = json.load(answer)
        finally:
            daemon.stop()
    finally:
        shutil.rmtree(state, ignore_errors=True)
    document["servers"] = [{"url": DEFAULT_SERVER}]
    return document


def render(document: dict[str, Any]) -> str:
    """The document as committed: sorted keys, two-space indent, a final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(output: Path = DEFAULT_OUTPUT) -> Path:
    """Write the core document to ``output`` (directories created); returns the path."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(core_document()))
    return output
