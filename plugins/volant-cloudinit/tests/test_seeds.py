"""The seed images, built with the real Debian tools and read back with them: every file byte for
byte, the label each builder promises (as the tools and kestrel's own reader see it), the default
meta-data, and the cloud-config of the guest tests accepted by Debian's ``cloud-init schema``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from volant_cloudinit import plugin
from volant_cloudinit.documents import instance_id
from volant_cloudinit.images import IsoSeed, VfatSeed

from volant_core.agent.seed import disk_label
from volant_core.sdk import SEED_PLAN_FILE, CloudInit, LaunchError, VMView
from volant_core.testing.contracts import SeedBuilderContract, make_vm_view

BUILDERS = {"vfat": VfatSeed, "iso": IsoSeed}
#: The label each builder gives its file system.
LABELS = {"vfat": "CIDATA", "iso": "cidata"}


@pytest.fixture
def vm(tmp_path: Path) -> VMView:
    """A VM as the core hands it to seed builders."""
    return make_vm_view("seeded", tmp_path / "vm", created_at="2026-12-03T09:00:00Z")


def _cloud_init(mode: str, **documents: str) -> CloudInit:
    return CloudInit.model_validate(
        {"seed_mode": mode, **{name: {"content": text} for name, text in documents.items()}}
    )


def fs_label(image: Path) -> str:
    """The file system label as Debian's tools report it (``fatlabel``, ``xorriso -pvd_info``)."""
    if image.suffix == ".iso":
        info = subprocess.run(
            ["xorriso", "-indev", str(image), "-pvd_info"], check=True, capture_output=True, text=True
        )
        (line,) = [line for line in (info.stdout + info.stderr).splitlines() if line.startswith("Volume Id")]
        return line.split(":", 1)[1].strip()
    return subprocess.run(["fatlabel", str(image)], check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize("mode", sorted(BUILDERS))
def test_the_seed_holds_the_documents_byte_for_byte_under_its_label(
    mode: str,
    vm: VMView,
    tmp_path: Path,
    cloud_config: str,
    meta_data: str,
    network_config: str,
    read_seed: Callable[[Path], dict[str, bytes]],
) -> None:
    directory = tmp_path / "seed"
    directory.mkdir()
    # Trailing blanks and a non-ASCII character must survive as given.
    user_data = cloud_config + "# café  \n\n"
    disk = BUILDERS[mode]().build(
        vm,
        _cloud_init(mode, user_data=user_data, meta_data=meta_data, network_config=network_config),
        directory,
    )
    files = read_seed(disk.path)
    assert files["user-data"] == user_data.encode()
    assert files["meta-data"] == meta_data.encode()
    assert files["network-config"] == network_config.encode()
    assert json.loads(files[SEED_PLAN_FILE])["hostname"] == "seeded-host"
    assert set(files) == {"user-data", "meta-data", "network-config", SEED_PLAN_FILE}
    assert fs_label(disk.path) == LABELS[mode]
    assert disk_label(disk.path.read_bytes()[:0x8800]) == LABELS[mode]  # what kestrel looks for
    assert disk.readonly
    assert sorted(p.name for p in directory.iterdir()) == [disk.path.name], "staging files were left behind"


@pytest.mark.parametrize("mode", sorted(BUILDERS))
def test_without_meta_data_the_seed_gets_a_stable_instance_id_and_the_vm_name(
    mode: str, vm: VMView, tmp_path: Path, read_seed: Callable[[Path], dict[str, bytes]]
) -> None:
    builds = []
    for boot in range(2):
        directory = tmp_path / f"boot{boot}"
        directory.mkdir()
        builds.append(read_seed(BUILDERS[mode]().build(vm, _cloud_init(mode), directory).path))
    first, second = builds
    assert first["meta-data"] == second["meta-data"]
    assert first["meta-data"].decode() == f"instance-id: {instance_id(vm)}\nlocal-hostname: seeded\n"
    assert first["user-data"] == b"" and "network-config" not in first
    again = make_vm_view("seeded", tmp_path / "vm", created_at="2026-12-04T09:00:00Z")
    assert instance_id(again) != instance_id(vm), "a VM created again under the name kept the old instance id"


def test_a_missing_tool_fails_the_launch_naming_the_package(
    vm: VMView, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(LaunchError, match=r"mkfs\.vfat.*apt-get install dosfstools"):
        VfatSeed().build(vm, _cloud_init("vfat"), tmp_path)
    assert plugin.check_seed_tools().status == "fail"


def test_the_plugin_registers_both_builders() -> None:
    assert [d.name for d in plugin.volant_seed_builders()] == ["vfat", "iso"]


def test_cloud_init_schema_accepts_the_cloud_config_of_the_guest_tests(
    tmp_path: Path, cloud_config: str
) -> None:
    """Debian's cloud-init (test environment only) validates the cloud-config the guest applies."""
    if shutil.which("cloud-init") is None:
        pytest.skip("Debian's cloud-init is not installed (apt-get install cloud-init; make bootstrap does)")
    document = tmp_path / "user-data"
    document.write_text(cloud_config)
    checked = subprocess.run(
        ["cloud-init", "schema", "--config-file", str(document)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    document.write_text(cloud_config.replace("hostname: seeded-host", "hostname: [not, a, name]"))
    refused = subprocess.run(["cloud-init", "schema", "--config-file", str(document)], capture_output=True)
    assert refused.returncode != 0, "cloud-init schema accepts anything: the check above proves nothing"


class TestVfatSeed(SeedBuilderContract):
    """The vfat builder honours the seed-builder contract."""

    @pytest.fixture
    def seed_builder(self) -> Any:
        return VfatSeed()

    @pytest.fixture
    def cloud_init(self) -> CloudInit:
        return _cloud_init("vfat", user_data="#cloud-config\n")


class TestIsoSeed(SeedBuilderContract):
    """The iso builder honours the seed-builder contract."""

    @pytest.fixture
    def seed_builder(self) -> Any:
        return IsoSeed()

    @pytest.fixture
    def cloud_init(self) -> CloudInit:
        return _cloud_init("iso", user_data="#cloud-config\n")
