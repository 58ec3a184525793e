"""Launches that must fail cleanly: a LaunchError that says why, and no process left behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from volant_qemu.launcher import QemuLauncher

from volant_core.errors import LaunchError
from volant_core.launch import LaunchSpec
from volant_core.testing.processes import processes_mentioning

pytestmark = pytest.mark.usefixtures("qemu_binary", "tcg")

SpecFactory = Callable[..., LaunchSpec]


def test_missing_kernel(vm_dir: Path, make_spec: SpecFactory) -> None:
    with pytest.raises(LaunchError, match=r"kernel .* does not exist"):
        QemuLauncher().launch(make_spec(vm_dir, vm_dir.parent / "absent-vmlinux"))
    assert processes_mentioning(str(vm_dir)) == []


def test_missing_initramfs(vm_dir: Path, make_spec: SpecFactory, garbage_kernel: Path) -> None:
    spec = make_spec(vm_dir, garbage_kernel, initramfs=vm_dir.parent / "absent.cpio.gz")
    with pytest.raises(LaunchError, match=r"initramfs .* does not exist"):
        QemuLauncher().launch(spec)


def test_qemu_refusing_the_kernel(vm_dir: Path, make_spec: SpecFactory, garbage_kernel: Path) -> None:
    with pytest.raises(LaunchError, match="QEMU exited with status 1") as caught:
        QemuLauncher().launch(make_spec(vm_dir, garbage_kernel))
    assert "qemu.log" in caught.value.message
    assert "kernel" in caught.value.message.split("qemu.log:", 1)[1].lower()
    assert processes_mentioning(str(vm_dir)) == []


def test_bad_extra_argument(vm_dir: Path, make_spec: SpecFactory, garbage_kernel: Path) -> None:
    spec = make_spec(vm_dir, garbage_kernel, extra_args=("-no-such-option",))
    with pytest.raises(LaunchError, match="no-such-option"):
        QemuLauncher().launch(spec)
    assert processes_mentioning(str(vm_dir)) == []


def test_socket_path_too_long(tmp_path: Path, make_spec: SpecFactory, garbage_kernel: Path) -> None:
    vm_dir = tmp_path / ("d" * 110)
    with pytest.raises(LaunchError, match="UNIX socket path"):
        QemuLauncher().launch(make_spec(vm_dir, garbage_kernel))
    assert not vm_dir.exists()


def test_missing_binary(vm_dir: Path, make_spec: SpecFactory, garbage_kernel: Path) -> None:
    with pytest.raises(LaunchError, match="cannot start"):
        QemuLauncher(binary=str(vm_dir.parent / "no-qemu")).launch(make_spec(vm_dir, garbage_kernel))


def test_error_quotes_only_this_launch(vm_dir: Path, make_spec: SpecFactory, garbage_kernel: Path) -> None:
    launcher = QemuLauncher()
    with pytest.raises(LaunchError, match="invalid kernel header"):
        launcher.launch(make_spec(vm_dir, garbage_kernel))
    with pytest.raises(LaunchError) as caught:
        launcher.launch(make_spec(vm_dir, garbage_kernel, extra_args=("-no-such-option",)))
    assert "no-such-option" in caught.value.message
    assert "invalid kernel header" not in caught.value.message
    assert "invalid kernel header" in (vm_dir / "qemu.log").read_text()  # the log keeps both
