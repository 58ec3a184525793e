"""hello-runtime honours volant-core's runtime contract: a valid manifest, and a payload that the
installed package holds and that matches the manifest's checksum (run installed: package://)."""

from __future__ import annotations

from typing import Any

import pytest
from volant_runtime_hello import plugin

from volant_core.testing.contracts import RuntimeContract


class TestHelloRuntime(RuntimeContract):
    """The core's runtime contract on this package."""

    @pytest.fixture
    def runtime_manifests(self) -> list[Any]:
        return list(plugin.volant_runtime_manifests())
