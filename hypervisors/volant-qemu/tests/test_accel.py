"""Accelerator choice: the environment override, the /dev/kvm gate, and the cached probe boot."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from volant_qemu.accel import (
    ACCEL_ENV,
    KVM_DEVICE,
    cache_path,
    choose_accelerator,
    file_sha256,
    host_key,
    kvm_device_opens,
)

from volant_core.errors import LaunchError
from volant_core.launch import LaunchSpec

SpecFactory = Callable[..., LaunchSpec]


@pytest.fixture
def auto(monkeypatch: pytest.MonkeyPatch) -> None:
    """``VOLANT_QEMU_ACCEL`` unset: automatic choice."""
    monkeypatch.delenv(ACCEL_ENV, raising=False)


@pytest.mark.parametrize("forced", ["kvm", "tcg", "TCG "])
def test_environment_forces_the_accelerator(
    monkeypatch: pytest.MonkeyPatch, make_spec: SpecFactory, tmp_path: Path, forced: str
) -> None:
    monkeypatch.setenv(ACCEL_ENV, forced)
    spec = make_spec(tmp_path, tmp_path / "never-read")
    assert choose_accelerator(spec, binary="unused") == forced.strip().lower()


def test_invalid_environment_value(
    monkeypatch: pytest.MonkeyPatch, make_spec: SpecFactory, tmp_path: Path
) -> None:
    monkeypatch.setenv(ACCEL_ENV, "hvf")
    with pytest.raises(LaunchError, match="VOLANT_QEMU_ACCEL='hvf' is not valid"):
        choose_accelerator(make_spec(tmp_path, tmp_path / "k"), binary="unused")


@pytest.mark.usefixtures("auto")
def test_no_kvm_device_means_tcg_without_probe(make_spec: SpecFactory, garbage_kernel: Path) -> None:
    spec = make_spec(garbage_kernel.parent / "vm", garbage_kernel)
    assert choose_accelerator(spec, binary="unused", kvm_device=garbage_kernel.parent / "no-kvm") == "tcg"
    assert not cache_path(garbage_kernel).exists()


@pytest.mark.usefixtures("auto")
@pytest.mark.skipif(not kvm_device_opens(KVM_DEVICE), reason="needs an openable /dev/kvm")
def test_failed_probe_is_cached_per_kernel(
    qemu_binary: str, make_spec: SpecFactory, garbage_kernel: Path
) -> None:
    spec = make_spec(garbage_kernel.parent / "vm", garbage_kernel)
    assert choose_accelerator(spec, binary=qemu_binary, probe_timeout=15) == "tcg"
    cached = json.loads(cache_path(garbage_kernel).read_text())
    assert cached["kernel_sha256"] == file_sha256(garbage_kernel)
    assert cached["host"] == host_key()
    assert cached["accelerator"] == "tcg"

    # A cached verdict is used as is, without booting (the binary does not even exist).
    cache_path(garbage_kernel).write_text(json.dumps({**cached, "accelerator": "kvm"}))
    assert choose_accelerator(spec, binary="/nonexistent/qemu") == "kvm"

    # Another kernel (other hash) is probed again.
    garbage_kernel.write_bytes(b"another non-kernel")
    assert choose_accelerator(spec, binary=qemu_binary, probe_timeout=15) == "tcg"
    assert json.loads(cache_path(garbage_kernel).read_text())["kernel_sha256"] == file_sha256(garbage_kernel)
