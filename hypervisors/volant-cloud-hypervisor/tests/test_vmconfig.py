"""LaunchSpec → the ``VmConfig`` of ``PUT vm.create``: every field rendered, and every body valid
against the contract's v54 OpenAPI file (``chstandin.openapi``, objects closed: a field the schema
does not name is an error), as the stand-in checks what it receives.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from chstandin.openapi import OPENAPI_FILE, ApiContract
from volant_cloud_hypervisor.paths import VmPaths
from volant_cloud_hypervisor.vmconfig import VmFiles, build_vm_config

from volant_core.errors import LaunchError
from volant_core.launch import BackingImage, DiskRole, DiskSpec, LaunchSpec, NicSpec, PciDeviceSpec

VM_DIR = Path("/run/volant/vms/web")
CONTRACT = ApiContract()


def _spec(**fields: object) -> LaunchSpec:
    values: dict[str, object] = {
        "name": "web",
        "vm_dir": VM_DIR,
        "cpu_cores": 2,
        "memory_mb": 384,
        "kernel": Path("/boot/vmlinux"),
        "vsock_cid": 7,
        "initramfs": Path("/boot/initramfs.img"),
        "kernel_args": ("console=ttyS0", "panic=-1", "volant.name=web"),
    }
    values.update(fields)
    return LaunchSpec(**values)  # type: ignore[arg-type]


def _config(spec: LaunchSpec) -> dict[str, Any]:
    """The body for ``spec``, checked against the v54 schema of ``vm.create``'s request."""
    config = build_vm_config(spec, VmFiles.of(spec))
    operation = CONTRACT.operation("PUT", "/api/v1/vm.create")
    assert CONTRACT.check_request(operation, "application/json", json.dumps(config).encode()) == config
    return config


FULL = _spec(
    disks=(
        DiskSpec(Path("/images/root.qcow2"), readonly=False, format="qcow2", role=DiskRole.ROOTFS),
        DiskSpec(Path("/images/a,b.img"), readonly=True, format="raw", serial="x,y"),
    ),
    nics=(
        NicSpec("vt-web0", "52:54:00:12:34:56", host_mac="52:54:00:65:43:21", mtu=1400),
        NicSpec("vt-web1", "52:54:00:12:34:57"),
    ),
    pci_devices=(PciDeviceSpec("0000:01:00.0", Path("/sys/bus/pci/devices/0000:01:00.0"), iommu_group=3),),
)


def test_every_field_is_rendered_and_the_v54_schema_accepts_it() -> None:
    paths = VmPaths(VM_DIR)
    assert _config(FULL) == {
        "cpus": {"boot_vcpus": 2, "max_vcpus": 2},
        "memory": {"size": 384 * 1024 * 1024},
        "payload": {
            "kernel": "/boot/vmlinux",
            "initramfs": "/boot/initramfs.img",
            "cmdline": "console=ttyS0 panic=-1 volant.name=web",
        },
        "disks": [  # a JSON body carries commas: no refusal
            {"path": "/images/root.qcow2", "readonly": False, "image_type": "Qcow2"},
            {"path": "/images/a,b.img", "readonly": True, "image_type": "Raw", "serial": "x,y"},
        ],
        "net": [
            {"tap": "vt-web0", "mac": "52:54:00:12:34:56", "host_mac": "52:54:00:65:43:21", "mtu": 1400},
            {"tap": "vt-web1", "mac": "52:54:00:12:34:57"},
        ],
        "vsock": {"cid": 7, "socket": str(paths.vsock_socket)},
        "devices": [{"path": "/sys/bus/pci/devices/0000:01:00.0/"}],
        "serial": {"mode": "Socket", "socket": str(paths.serial_socket)},
        "console": {"mode": "Off"},
    }


def test_a_minimal_spec_still_has_the_agent_channel_and_no_optional_devices() -> None:
    config = _config(_spec(initramfs=None, kernel_args=()))
    assert config["payload"] == {"kernel": "/boot/vmlinux", "cmdline": ""}
    assert not {"disks", "net", "devices"} & set(config)
    assert config["vsock"]["socket"] == str(VmPaths(VM_DIR).vsock_socket)


def test_the_files_the_vmm_opens_replace_the_specs_and_disks_keep_the_spec_order() -> None:
    spec = _spec(disks=tuple(DiskSpec(Path(f"/images/d{n}.img")) for n in (3, 1, 2)))
    copies = VmFiles(VM_DIR / "boot" / "k", None, tuple(VM_DIR / "images" / f"{n}" for n in "abc"))
    config = build_vm_config(spec, copies)
    assert config["payload"] == {"kernel": str(VM_DIR / "boot" / "k"), "cmdline": spec.cmdline}
    assert [disk["path"] for disk in config["disks"]] == [str(VM_DIR / "images" / n) for n in "abc"]
    assert [disk["path"] for disk in _config(spec)["disks"]] == [f"/images/d{n}.img" for n in (3, 1, 2)]


def test_an_overlay_is_a_qcow2_disk_with_backing_files_on_a_key_of_the_contract() -> None:
    """Cloud Hypervisor v54 opens a qcow2 image's backing file only with ``backing_files``
    (``DiskConfig.backing_files`` in the contract's OpenAPI file, default false)."""
    overlay = DiskSpec(
        VM_DIR / "root" / "overlay.qcow2",
        format="qcow2",
        role=DiskRole.ROOTFS,
        backing=BackingImage(Path("/cache/sha256/ab"), "raw"),
    )
    disks = (overlay, DiskSpec(Path("/images/data.qcow2"), format="qcow2"))
    assert _config(_spec(disks=disks))["disks"] == [
        {"path": str(overlay.path), "readonly": False, "image_type": "Qcow2", "backing_files": True},
        {"path": "/images/data.qcow2", "readonly": False, "image_type": "Qcow2"},
    ]
    disk_config = yaml.safe_load(OPENAPI_FILE.read_text())["components"]["schemas"]["DiskConfig"]
    assert disk_config["properties"]["backing_files"] == {"type": "boolean", "default": False}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (_spec(disks=(DiskSpec(Path("/images/a.vmdk"), format="vmdk"),)), "disks[0]"),
        (_spec(devices=("virtio-rng-pci",)), "devices"),
        (_spec(extra_args=("-v",)), "extra_args"),
    ],
)
def test_what_cloud_hypervisor_cannot_be_told_is_refused_naming_the_field(
    spec: LaunchSpec, field: str
) -> None:
    with pytest.raises(LaunchError) as caught:
        build_vm_config(spec, VmFiles.of(spec))
    assert caught.value.field == field
