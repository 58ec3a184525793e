"""The runtime package honours volant-core's runtime contract (``volant_core.testing.contracts``):
its manifest is valid and its payload, read from the installed package, matches the checksum."""

from __future__ import annotations

from typing import Any

import pytest
from volant_core.testing.contracts import RuntimeContract

from {{ cookiecutter.module }} import plugin


class TestRuntime(RuntimeContract):
    """A valid manifest; ``package://`` artifacts present in the package and matching."""

    @pytest.fixture
    def runtime_manifests(self) -> list[Any]:
        return list(plugin.volant_runtime_manifests())
