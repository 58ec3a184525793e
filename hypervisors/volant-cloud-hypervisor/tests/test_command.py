"""LaunchSpec → argv: every field rendered, and every emitted option allowed by the contract's
grammar (``chstandin.argv``, written from ``contracts/cloud-hypervisor-cli.md``, which the stand-in
parses its own argv with).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from chstandin.argv import OPTIONS, ContractViolation, parse_argv
from volant_cloud_hypervisor.command import build_command
from volant_cloud_hypervisor.paths import VmPaths

from volant_core.errors import LaunchError
from volant_core.launch import BackingImage, DiskRole, DiskSpec, LaunchSpec, NicSpec, PciDeviceSpec

CONTRACT = Path(__file__).parent / "contracts" / "cloud-hypervisor-cli.md"
OPENAPI = Path(__file__).parent / "contracts" / "cloud-hypervisor-v54-openapi.yaml"
VM_DIR = Path("/run/volant/vms/web")


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


FULL = _spec(
    disks=(
        DiskSpec(Path("/images/root.qcow2"), readonly=False, format="qcow2", role=DiskRole.ROOTFS),
        DiskSpec(Path("/images/data.img"), readonly=True, format="raw", serial="data"),
    ),
    nics=(
        NicSpec("vt-web0", "52:54:00:12:34:56", host_mac="52:54:00:65:43:21", mtu=1400),
        NicSpec("vt-web1", "52:54:00:12:34:57"),
    ),
    pci_devices=(PciDeviceSpec("0000:01:00.0", Path("/sys/bus/pci/devices/0000:01:00.0"), iommu_group=3),),
)


def test_every_field_is_rendered_and_the_contract_grammar_accepts_it() -> None:
    argv = build_command(FULL, binary="/usr/bin/cloud-hypervisor")
    assert argv[0] == "/usr/bin/cloud-hypervisor"
    parsed = parse_argv(argv[1:])
    paths = VmPaths(VM_DIR)
    assert parsed.pairs("--api-socket") == {"path": str(paths.api_socket)}
    assert parsed.pairs("--cpus") == {"boot": "2"}
    assert parsed.pairs("--memory") == {"size": "384M"}
    assert parsed.one("--kernel") == "/boot/vmlinux"
    assert parsed.one("--initramfs") == "/boot/initramfs.img"
    assert parsed.one("--cmdline") == "console=ttyS0 panic=-1 volant.name=web"
    assert parsed.all_pairs("--disk") == [
        {"path": "/images/root.qcow2", "readonly": "off", "image_type": "qcow2"},
        {"path": "/images/data.img", "readonly": "on", "image_type": "raw", "serial": "data"},
    ]
    assert parsed.all_pairs("--net") == [
        {"tap": "vt-web0", "mac": "52:54:00:12:34:56", "host_mac": "52:54:00:65:43:21", "mtu": "1400"},
        {"tap": "vt-web1", "mac": "52:54:00:12:34:57"},
    ]
    assert parsed.pairs("--vsock") == {"cid": "7", "socket": str(paths.vsock_socket)}
    assert parsed.all_pairs("--device") == [{"path": "/sys/bus/pci/devices/0000:01:00.0/"}]
    assert parsed.pairs("--serial") == {"socket": str(paths.serial_socket)}
    assert parsed.pairs("--console") == {"off": ""}
    assert parsed.pairs("--event-monitor") == {"path": str(paths.event_monitor)}
    assert parsed.one("--log-file") == str(paths.vmm_log)
    assert parsed.one("--seccomp") == "true"
    assert parsed.flags == []


def test_a_minimal_spec_still_has_the_agent_channel_and_no_optional_devices() -> None:
    parsed = parse_argv(build_command(_spec(initramfs=None, kernel_args=()), binary="ch")[1:])
    assert "--initramfs" not in parsed.options
    assert parsed.one("--cmdline") == ""
    assert not {"--disk", "--net", "--device"} & set(parsed.options)
    assert parsed.pairs("--vsock")["socket"] == str(VmPaths(VM_DIR).vsock_socket)


def test_disks_keep_the_spec_order() -> None:
    disks = tuple(DiskSpec(Path(f"/images/d{n}.img")) for n in (3, 1, 2))
    parsed = parse_argv(build_command(_spec(disks=disks), binary="ch")[1:])
    assert [disk["path"] for disk in parsed.all_pairs("--disk")] == [
        "/images/d3.img",
        "/images/d1.img",
        "/images/d2.img",
    ]


def test_an_overlay_is_a_qcow2_disk_with_backing_files_on_a_key_of_the_contract() -> None:
    """Cloud Hypervisor v54 opens a qcow2 image's backing file only with ``backing_files=on``
    (``DiskConfig.backing_files`` in the contract's OpenAPI file, default false)."""
    overlay = DiskSpec(
        VM_DIR / "root" / "overlay.qcow2",
        format="qcow2",
        role=DiskRole.ROOTFS,
        backing=BackingImage(Path("/cache/sha256/ab"), "raw"),
    )
    disks = (overlay, DiskSpec(Path("/images/data.qcow2"), format="qcow2"))
    parsed = parse_argv(build_command(_spec(disks=disks), binary="ch")[1:])
    assert parsed.all_pairs("--disk") == [
        {"path": str(overlay.path), "readonly": "off", "image_type": "qcow2", "backing_files": "on"},
        {"path": "/images/data.qcow2", "readonly": "off", "image_type": "qcow2"},
    ]
    disk_config = yaml.safe_load(OPENAPI.read_text())["components"]["schemas"]["DiskConfig"]
    assert disk_config["properties"]["backing_files"] == {"type": "boolean", "default": False}


def test_the_grammar_covers_every_option_of_the_contract_table() -> None:
    """The hand-written grammar names exactly the options of the contract's table (no drift)."""
    table = set(re.findall(r"^\| `(-[-a-z]+)`", CONTRACT.read_text(), re.MULTILINE))
    flags = {"--landlock", "--no-shutdown", "-v"}
    # --landlock-rules is named in the --landlock row.
    assert table - flags == set(OPTIONS) - {"--landlock-rules"}


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--net", "tap=t0,ip=,mac=52:54:00:00:00:01"], "ip="),
        (["--vsock", "cid=3"], "socket= is required"),
        (["--vsock", "cid=2,socket=/s"], "cid"),
        (["--disk", "path=/d,image_type=vmdk"], "image_type"),
        (["--disk", "path=/d,format=raw"], "unknown key 'format'"),
        (["--serial", "socket"], "not key=value"),
        (["--device", "path=/sys/bus/pci/devices/0000:01:00.0"], "<BDF>/"),
        (["--memory", "size=256MiB"], "size"),
        (["--seccomp", "yes"], "not one of"),
        (["--api-socket", "/run/api.sock"], "not key=value"),
        (["--vsock", "cid=3,socket=/a", "--vsock", "cid=4,socket=/b"], "at most one"),
        (["-drive", "file=x"], "unknown option"),
    ],
)
def test_the_grammar_refuses_what_the_contract_does_not_allow(argv: list[str], complaint: str) -> None:
    with pytest.raises(ContractViolation, match=re.escape(complaint)):
        parse_argv(argv)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (_spec(disks=(DiskSpec(Path("/images/a,b.img")),)), "disks[0]"),
        (_spec(disks=(DiskSpec(Path("/images/a.vmdk"), format="vmdk"),)), "disks[0]"),
        (_spec(disks=(DiskSpec(Path("/i/a.img"), serial="x,y"),)), "disks[0].serial"),
        (_spec(vm_dir=Path("/run/a,b")), "vm_dir"),
        (_spec(devices=("virtio-rng-pci",)), "devices"),
        (_spec(extra_args=("-v",)), "extra_args"),
    ],
)
def test_what_cloud_hypervisor_cannot_be_told_is_refused_naming_the_field(
    spec: LaunchSpec, field: str
) -> None:
    with pytest.raises(LaunchError) as caught:
        build_command(spec, binary="ch")
    assert caught.value.field == field


def test_a_vm_dir_too_long_for_a_socket_is_refused() -> None:
    with pytest.raises(LaunchError, match="107"):
        build_command(_spec(vm_dir=Path("/run/" + "v" * 100)), binary="ch")
