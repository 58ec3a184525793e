"""Volant plugin entry point (``volant.plugins`` → ``qemu``): the QEMU hypervisor, its settings and
its host checks.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from volant_core import hookimpl
from volant_core.context import PluginContext
from volant_core.descriptors import HostCheck, HostCheckResult
from volant_core.launch import Capability, HypervisorDescriptor
from volant_qemu.accel import KVM_DEVICE, kvm_device_opens
from volant_qemu.binary import find_binary, missing_binary_reason
from volant_qemu.launcher import QemuLauncher
from volant_qemu.settings import QemuSettings

#: What the QEMU backend offers, for the orchestrator and ``volar hypervisors``.
CAPABILITIES = frozenset(
    {
        Capability.KVM,
        Capability.TCG,
        Capability.DISKS,
        Capability.TAP_NICS,
        Capability.PCI_PASSTHROUGH,
        Capability.RAW_ARGUMENTS,
        Capability.CONSOLE,
        Capability.GRACEFUL_STOP,
        Capability.ADOPT,
        Capability.AGENT_CHANNEL,
    }
)
#: Present on hosts whose KVM is PVM: only PVM-built guest kernels run under it.
PVM_MODULE = Path("/sys/module/kvm_pvm")
ACCEL_VARIABLE = "VOLANT_QEMU_ACCEL"
BINARY_VARIABLE = "VOLANT_QEMU_BINARY"


def _settings(context: PluginContext) -> QemuSettings:
    assert isinstance(context.options, QemuSettings)
    return context.options


@hookimpl
def volant_settings() -> list[type[BaseModel]]:
    """``VOLANT_QEMU_ACCEL`` and ``VOLANT_QEMU_BINARY``."""
    return [QemuSettings]


@hookimpl
def volant_hypervisors() -> list[HypervisorDescriptor]:
    """Register ``qemu``: KVM when a probe boot proves it usable, TCG otherwise."""
    return [
        HypervisorDescriptor(
            name="qemu",
            factory=QemuLauncher.from_context,
            description="QEMU (q35, virtio) with KVM when usable, TCG emulation otherwise",
            capabilities=CAPABILITIES,
            available=lambda context: missing_binary_reason(_settings(context).binary),
        )
    ]


@hookimpl
def volant_host_checks() -> list[HostCheck]:
    """``volar doctor`` checks: the QEMU binary and the accelerator QEMU will use."""
    return [
        HostCheck(name="qemu-binary", run=check_binary),
        HostCheck(name="qemu-accelerator", run=check_accel),
    ]


def check_binary(context: PluginContext) -> HostCheckResult:
    """Pass when the QEMU binary is found."""
    wanted = _settings(context).binary if context.options is not None else None
    binary = find_binary(wanted)
    if binary is None:
        reason = missing_binary_reason(wanted) or "QEMU not found"
        return HostCheckResult("fail", reason, fix=f"set {BINARY_VARIABLE}")
    return HostCheckResult("pass", f"using {binary}")


def check_accel(context: PluginContext) -> HostCheckResult:
    """Which accelerator QEMU will use; warn when guests will run emulated (TCG)."""
    if context.options is None:
        return HostCheckResult(
            "fail", f"{ACCEL_VARIABLE} is invalid", fix=f"set {ACCEL_VARIABLE} to auto, kvm or tcg"
        )
    setting = _settings(context).accel
    slow_fix = "guests run emulated (several times slower); enable KVM on the host for speed"
    if setting == "tcg":
        return HostCheckResult("warn", f"{ACCEL_VARIABLE}=tcg forces TCG", fix=slow_fix)
    if not kvm_device_opens(KVM_DEVICE):
        detail = f"{KVM_DEVICE} cannot be opened: TCG will be used"
        return HostCheckResult("fail" if setting == "kvm" else "warn", detail, fix=slow_fix)
    if PVM_MODULE.exists():
        return HostCheckResult(
            "warn",
            f"{KVM_DEVICE} opens but the host KVM is PVM: only PVM guest kernels run under it; "
            "a probe boot decides per kernel (expect TCG)",
            fix=f"use a PVM-enabled guest kernel, or set {ACCEL_VARIABLE}=tcg to skip the probe",
        )
    detail = f"{ACCEL_VARIABLE}={setting}: {KVM_DEVICE} opens"
    if setting == "auto":
        detail += "; a probe boot of each kernel confirms KVM before it is used"
    return HostCheckResult("pass", detail)
