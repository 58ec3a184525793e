"""Fixtures shared by the core tests (the daemon and guest fixtures come from volant_core.testing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def hello_manifest() -> dict[str, Any]:
    """The example runtime shipped in examples/hello-http (a small HTTP server in the guest)."""
    return json.loads((REPO / "examples" / "hello-http" / "manifest.json").read_text())
