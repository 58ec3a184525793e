"""The contract copies this package tests against are the project's contracts, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

#: The copies, beside these tests (the package tests alone once installed).
COPIES = Path(__file__).parent / "contracts"
#: The project's shared contracts, when this package is tested inside its repository's workspace.
SHARED = Path(__file__).resolve().parents[4] / "shared" / "contracts"
FILES = ("cloud-hypervisor-cli.md", "cloud-hypervisor-v54-openapi.yaml")


@pytest.mark.parametrize("name", FILES)
def test_copy_is_byte_identical_to_the_shared_contract(name: str) -> None:
    if not SHARED.is_dir():
        pytest.skip(f"no shared contracts at {SHARED} (package tested on its own)")
    assert (COPIES / name).read_bytes() == (SHARED / name).read_bytes(), (
        f"tests/contracts/{name} differs from {SHARED / name}: copy it again"
    )
