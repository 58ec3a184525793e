"""The QEMU command line built from a launch spec."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from volant_qemu.command import Handover, build_command
from volant_qemu.paths import VmPaths

from volant_core.errors import LaunchError
from volant_core.launch import (
    SOCKET_NAME_ROOM,
    BackingImage,
    DiskRole,
    DiskSpec,
    LaunchSpec,
    NicSpec,
    PciDeviceSpec,
)

VM_DIR = Path("/run/volant/vms/web")

SpecFactory = Callable[..., LaunchSpec]
Builder = Callable[..., list[str]]


def option_values(argv: list[str], flag: str) -> list[str]:
    """Every value given to ``flag`` in ``argv``."""
    return [value for name, value in itertools.pairwise(argv) if name == flag]


@pytest.fixture
def build(make_spec: SpecFactory) -> Builder:
    """``build(**overrides)``: the argv for a default test spec with ``overrides``, under TCG."""

    def argv(**overrides: object) -> list[str]:
        spec = make_spec(VM_DIR, Path("/k/vmlinux"), **overrides)
        return build_command(spec, accel="tcg", binary="qemu-system-x86_64")

    return argv


def test_machine_and_basics(build: Builder) -> None:
    argv = build(cpu_cores=2, memory_mb=512, initramfs=Path("/k/initrd.gz"))
    assert argv[0] == "qemu-system-x86_64"
    assert option_values(argv, "-M") == ["q35"]
    for flag in ("-nodefaults", "-no-user-config", "-no-reboot"):
        assert flag in argv
    assert option_values(argv, "-display") == ["none"]
    assert option_values(argv, "-smp") == ["2"]
    assert option_values(argv, "-m") == ["512"]
    assert option_values(argv, "-kernel") == ["/k/vmlinux"]
    assert option_values(argv, "-initrd") == ["/k/initrd.gz"]
    assert option_values(argv, "-pidfile") == [f"{VM_DIR}/qemu.pid"]
    assert "virtio-rng-pci" in option_values(argv, "-device")


def test_no_initrd_without_initramfs(build: Builder) -> None:
    assert "-initrd" not in build()


def test_cmdline_is_passed_verbatim(build: Builder) -> None:
    argv = build(kernel_args=("console=ttyS0", "volant.manifest=abc", "quiet"))
    assert option_values(argv, "-append") == ["console=ttyS0 volant.manifest=abc quiet"]


@pytest.mark.parametrize(("accel", "cpu"), [("tcg", "max"), ("kvm", "host")])
def test_accelerator_and_cpu(make_spec: SpecFactory, accel: str, cpu: str) -> None:
    argv = build_command(make_spec(VM_DIR, Path("/k")), accel=accel, binary="qemu")
    assert option_values(argv, "-accel") == [accel]
    assert option_values(argv, "-cpu") == [cpu]


def test_unknown_accelerator_is_refused(make_spec: SpecFactory) -> None:
    with pytest.raises(ValueError, match="hvf"):
        build_command(make_spec(VM_DIR, Path("/k")), accel="hvf", binary="qemu")


def test_console_agent_and_qmp_sockets(build: Builder) -> None:
    argv = build()
    chardevs = option_values(argv, "-chardev")
    assert (
        f"socket,id=console,path={VM_DIR}/console.sock,server=on,wait=off,logfile={VM_DIR}/console.log,logappend=on"
        in chardevs
    )
    assert option_values(argv, "-serial") == ["chardev:console"]
    devices = option_values(argv, "-device")
    assert devices.count("virtio-serial-pci") == 1
    # One virtio-serial port ("lane") per agent socket; lane 0 keeps the name older VMs had.
    lanes = [("agent.sock", "volant.agent")] + [(f"agent.{n}.sock", f"volant.agent.{n}") for n in (1, 2, 3)]
    for lane, (sock, port) in enumerate(lanes):
        assert f"socket,id=agent{lane},path={VM_DIR}/{sock},server=on,wait=off" in chardevs
        assert f"virtserialport,chardev=agent{lane},name={port}" in devices
    assert option_values(argv, "-qmp") == [f"unix:{VM_DIR}/qmp.sock,server=on,wait=off"]


def test_disks_in_order_with_format_and_readonly(build: Builder) -> None:
    argv = build(disks=(DiskSpec(Path("/d/root.img")), DiskSpec(Path("/d/seed.iso"), readonly=True)))
    assert option_values(argv, "-drive") == [
        "file=/d/root.img,if=none,id=disk0,format=raw",
        "file=/d/seed.iso,if=none,id=disk1,format=raw,readonly=on",
    ]
    blk = [d for d in option_values(argv, "-device") if d.startswith("virtio-blk-pci")]
    assert blk == ["virtio-blk-pci,drive=disk0", "virtio-blk-pci,drive=disk1"]


def test_an_overlay_names_its_backing_image_itself_never_following_its_header(
    make_spec: SpecFactory,
) -> None:
    """A qcow2 overlay of the VM's own (ADR 0037): QEMU reads qcow2 and gets the backing image named
    on the command line (by path, or as the daemon's descriptor for a confined QEMU), read-only."""
    overlay = DiskSpec(
        VM_DIR / "root" / "overlay.qcow2",
        format="qcow2",
        role=DiskRole.ROOTFS,
        backing=BackingImage(Path("/cache/sha256/ab,c"), "raw"),
    )
    spec = make_spec(VM_DIR, Path("/k/vmlinux"), disks=(overlay,))
    backing = "backing.driver=raw,backing.file.filename={},backing.read-only=on"
    by_path = build_command(spec, accel="tcg", binary="qemu")
    assert option_values(by_path, "-drive") == [
        f"file={VM_DIR}/root/overlay.qcow2,if=none,id=disk0,format=qcow2,"
        + backing.format("/cache/sha256/ab,,c")
    ]
    assert option_values(by_path, "-add-fd") == []
    handover = Handover(Path("/k/vmlinux"), None, disk_fds=(None,), tap_fds=(), backing_fds=(9,))
    by_fd = build_command(spec, accel="tcg", binary="qemu", handover=handover)
    assert option_values(by_fd, "-add-fd") == ["fd=9,set=9,opaque=/cache/sha256/ab,,c"]
    assert option_values(by_fd, "-drive") == [
        f"file={VM_DIR}/root/overlay.qcow2,if=none,id=disk0,format=qcow2," + backing.format("/dev/fdset/9")
    ]
    assert handover.descriptors == (9,)


def test_commas_in_paths_are_escaped(build: Builder) -> None:
    argv = build(disks=(DiskSpec(Path("/d/a,b.qcow2"), format="qcow2"),))
    assert option_values(argv, "-drive") == ["file=/d/a,,b.qcow2,if=none,id=disk0,format=qcow2"]


def test_tap_nics_never_use_vhost(build: Builder) -> None:
    argv = build(nics=(NicSpec("vtap0", "02:00:00:00:00:01"), NicSpec("vtap1", "02:00:00:00:00:02")))
    assert option_values(argv, "-netdev") == [
        "tap,id=net0,ifname=vtap0,script=no,downscript=no",
        "tap,id=net1,ifname=vtap1,script=no,downscript=no",
    ]
    nets = [d for d in option_values(argv, "-device") if d.startswith("virtio-net-pci")]
    assert nets == [
        "virtio-net-pci,netdev=net0,mac=02:00:00:00:00:01",
        "virtio-net-pci,netdev=net1,mac=02:00:00:00:00:02",
    ]
    assert not any("vhost" in arg for arg in argv)


def test_typed_parts_are_rendered_in_qemu_syntax(build: Builder) -> None:
    """A disk's serial, a NIC's MTU and a PCI device spec each become QEMU's own syntax."""
    argv = build(
        disks=(DiskSpec(Path("/d/data.img"), serial="data,1"),),
        nics=(NicSpec("vtap0", "02:00:00:00:00:01", host_mac="02:00:00:00:00:ff", mtu=1400),),
        pci_devices=(PciDeviceSpec("0000:01:00.0", Path("/sys/bus/pci/devices/0000:01:00.0"), 7),),
    )
    devices = option_values(argv, "-device")
    assert "virtio-blk-pci,drive=disk0,serial=data,,1" in devices
    assert "virtio-net-pci,netdev=net0,mac=02:00:00:00:00:01,host_mtu=1400" in devices
    assert "vfio-pci,host=0000:01:00.0" in devices


def test_devices_then_extra_args_last(build: Builder) -> None:
    argv = build(devices=("vfio-pci,host=0000:01:00.0",), extra_args=("-S", "-d", "guest_errors"))
    assert "vfio-pci,host=0000:01:00.0" in option_values(argv, "-device")
    assert argv[-3:] == ["-S", "-d", "guest_errors"]


def test_socket_path_too_long_is_refused(make_spec: SpecFactory) -> None:
    long_dir = Path("/run/volant/vms") / ("x" * 100)
    with pytest.raises(LaunchError, match="at most 107"):
        build_command(make_spec(long_dir, Path("/k")), accel="tcg", binary="qemu")


def test_every_socket_name_fits_the_room_the_core_checks_for() -> None:
    # volantd refuses a VM whose directory leaves less than SOCKET_NAME_ROOM bytes, before any download
    assert max(len(sock.name) for sock in VmPaths(Path("/v")).sockets) <= SOCKET_NAME_ROOM


def test_socket_path_at_the_limit_is_accepted(make_spec: SpecFactory) -> None:
    # "/agent.N.sock" is as long as "/console.sock" (13 bytes); "/qmp.sock" is shorter.
    vm_dir = Path("/" + "x" * (107 - len("/console.sock") - 1))
    argv = build_command(make_spec(vm_dir, Path("/k")), accel="tcg", binary="qemu")
    assert len(f"{vm_dir}/console.sock") == 107
    assert "-qmp" in argv
