"""The boot source honours volant-core's boot-source contract (``volant_core.testing.contracts``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from volant_core.sdk import BootSourceDescriptor
from volant_core.testing.contracts import BootSourceContract

from {{ cookiecutter.module }}.source import SCHEME, DirectorySource


class TestBootSource(BootSourceContract):
    """Whole reads, resuming, a refused missing artifact, verification and caching by the core."""

    @pytest.fixture
    def boot_source(self, tmp_path: Path) -> BootSourceDescriptor:
        return BootSourceDescriptor("{{ cookiecutter.plugin_name }}", (SCHEME,), DirectorySource(tmp_path).open)

    @pytest.fixture
    def artifact(self, tmp_path: Path) -> bytes:
        data = bytes(range(256)) * 16
        (tmp_path / "kernel.img").write_bytes(data)
        return data

    @pytest.fixture
    def artifact_url(self) -> str:
        return f"{SCHEME}://kernel.img"

    @pytest.fixture
    def missing_url(self) -> str:
        return f"{SCHEME}://absent.img"
