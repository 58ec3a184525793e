"""The core's own boot sources honour the boot-source contract plugins are held to
(``volant_core.testing.contracts.BootSourceContract``): local files and files shipped inside an
installed distribution here; HTTP(S) in ``tests/test_artifact_downloads.py``, against a server."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from volant_core import builtins
from volant_core.descriptors import BootSourceDescriptor
from volant_core.testing.contracts import BootSourceContract

#: An installed distribution and a file its RECORD lists, read through ``package://``.
DISTRIBUTION, SHIPPED = "click", "click/__init__.py"


def source(name: str) -> BootSourceDescriptor:
    """The core's boot source ``name``."""
    (found,) = [s for s in builtins.volant_boot_sources() if s.name == name]
    return found


class TestFileSource(BootSourceContract):
    """Plain absolute paths and ``file://`` URLs."""

    @pytest.fixture
    def boot_source(self) -> BootSourceDescriptor:
        return source("file")

    @pytest.fixture
    def artifact(self) -> bytes:
        return bytes(range(256)) * 64

    @pytest.fixture
    def artifact_url(self, tmp_path: Path, artifact: bytes) -> str:
        path = tmp_path / "image.raw"
        path.write_bytes(artifact)
        return path.as_uri()

    @pytest.fixture
    def missing_url(self, tmp_path: Path) -> str:
        return (tmp_path / "absent.raw").as_uri()


class TestPackageSource(BootSourceContract):
    """``package://<distribution>/<path>``: a file an installed distribution ships."""

    @pytest.fixture
    def boot_source(self) -> BootSourceDescriptor:
        return source("package")

    @pytest.fixture
    def artifact(self) -> bytes:
        located = importlib.metadata.distribution(DISTRIBUTION).locate_file(SHIPPED)
        return Path(str(located)).read_bytes()

    @pytest.fixture
    def artifact_url(self) -> str:
        return f"package://{DISTRIBUTION}/{SHIPPED}"

    @pytest.fixture
    def missing_url(self) -> str:
        return f"package://{DISTRIBUTION}/click/not-shipped.txt"
