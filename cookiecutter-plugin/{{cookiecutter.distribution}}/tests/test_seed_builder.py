"""The seed builder honours volant-core's seed-builder contract (``volant_core.testing.contracts``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from volant_core.sdk import CloudInit, VMView
from volant_core.testing.contracts import SeedBuilderContract, make_vm_view

from {{ cookiecutter.module }}.seed import SeedBuilder


class TestSeedBuilder(SeedBuilderContract):
    """A seed disk inside the VM's seed directory."""

    @pytest.fixture
    def seed_builder(self) -> SeedBuilder:
        return SeedBuilder()

    @pytest.fixture
    def vm(self, tmp_path: Path) -> VMView:
        return make_vm_view("web", tmp_path / "vm")

    @pytest.fixture
    def cloud_init(self) -> CloudInit:
        return CloudInit.model_validate({"user_data": {"content": "#cloud-config\nhostname: web\n"}})

    def test_the_seed_holds_the_user_data(
        self, seed_builder: SeedBuilder, vm: VMView, cloud_init: CloudInit, tmp_path: Path
    ) -> None:
        disk = seed_builder.build(vm, cloud_init, tmp_path)
        assert cloud_init.user_data is not None
        assert json.loads(disk.path.read_text())["user-data"] == cloud_init.user_data.content
