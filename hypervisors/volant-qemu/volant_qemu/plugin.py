"""Volant plugin entry point (``volant.plugins`` → ``qemu``): the QEMU hypervisor and its host checks."""

from __future__ import annotations

from pathlib import Path

from volant_core import hookimpl
from volant_core.descriptors import HostCheck, HostCheckResult
from volant_core.errors import LaunchError
from volant_core.launch import HypervisorDescriptor
from volant_qemu.accel import ACCEL_ENV, KVM_DEVICE, accel_setting, kvm_device_opens
from volant_qemu.binary import BINARY_ENV, find_binary, missing_binary_reason
from volant_qemu.launcher import QemuLauncher

#: What the QEMU backend offers, for the orchestrator and ``volar hypervisors``.
CAPABILITIES = frozenset({"kvm", "tcg", "virtio-serial-agent", "acpi-shutdown", "disks", "tap-nics", "adopt"})
#: Present on hosts whose KVM is PVM: only PVM-built guest kernels run under it.
PVM_MODULE = Path("/sys/module/kvm_pvm")


@hookimpl
def volant_hypervisors() -> list[HypervisorDescriptor]:
    """Register ``qemu``: KVM when a probe boot proves it usable, TCG otherwise."""
    return [
        HypervisorDescriptor(
            name="qemu",
            factory=QemuLauncher,
            description="QEMU (q35, virtio) with KVM when usable, TCG emulation otherwise",
            capabilities=CAPABILITIES,
            available=missing_binary_reason,
        )
    ]


@hookimpl
def volant_host_checks() -> list[HostCheck]:
    """``volar doctor`` checks: the QEMU binary and the accelerator QEMU will use."""
    return [
        HostCheck(name="qemu-binary", run=check_binary),
        HostCheck(name="qemu-accelerator", run=check_accel),
    ]


def check_binary() -> HostCheckResult:
    """Pass when the QEMU binary is found."""
    binary = find_binary()
    if binary is None:
        return HostCheckResult("fail", missing_binary_reason() or "QEMU not found", fix=f"set {BINARY_ENV}")
    return HostCheckResult("pass", f"using {binary}")


def check_accel() -> HostCheckResult:
    """Which accelerator QEMU will use; warn when guests will run emulated (TCG)."""
    try:
        setting = accel_setting()
    except LaunchError as exc:
        return HostCheckResult("fail", exc.message, fix=f"set {ACCEL_ENV} to auto, kvm or tcg")
    slow_fix = "guests run emulated (several times slower); enable KVM on the host for speed"
    if setting == "tcg":
        return HostCheckResult("warn", f"{ACCEL_ENV}=tcg forces TCG", fix=slow_fix)
    if not kvm_device_opens(KVM_DEVICE):
        detail = f"{KVM_DEVICE} cannot be opened: TCG will be used"
        return HostCheckResult("fail" if setting == "kvm" else "warn", detail, fix=slow_fix)
    if PVM_MODULE.exists():
        return HostCheckResult(
            "warn",
            f"{KVM_DEVICE} opens but the host KVM is PVM: only PVM guest kernels run under it; "
            "a probe boot decides per kernel (expect TCG)",
            fix=f"use a PVM-enabled guest kernel, or set {ACCEL_ENV}=tcg to skip the probe",
        )
    detail = f"{ACCEL_ENV}={setting}: {KVM_DEVICE} opens"
    if setting == "auto":
        detail += "; a probe boot of each kernel confirms KVM before it is used"
    return HostCheckResult("pass", detail)
