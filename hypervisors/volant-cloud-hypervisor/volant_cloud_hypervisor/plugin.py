"""Volant plugin entry point (``volant.plugins`` → ``cloud-hypervisor``): the Cloud Hypervisor
hypervisor, its settings and its host checks.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from pydantic import BaseModel

from volant_cloud_hypervisor.binary import BINARY_VARIABLE, find_binary, missing_binary_reason
from volant_cloud_hypervisor.launcher import CloudHypervisorLauncher
from volant_cloud_hypervisor.settings import CloudHypervisorSettings
from volant_core import hookimpl
from volant_core.context import PluginContext
from volant_core.descriptors import HostCheck, HostCheckResult
from volant_core.launch import Capability, HypervisorDescriptor

#: What the backend's instances can do through their REST API, beyond what the core checks:
#: ``CloudHypervisorInstance.api()`` pauses and resumes, snapshots, and hot-plugs devices.
PAUSE = "pause"
SNAPSHOT = "snapshot"
HOTPLUG = "hotplug"
#: What the Cloud Hypervisor backend offers, for the orchestrator and ``volar hypervisors``. No
#: ``tcg`` (Cloud Hypervisor needs KVM) and no ``raw-arguments`` (refused, never ignored).
CAPABILITIES = frozenset(
    {
        Capability.KVM,
        Capability.DISKS,
        Capability.TAP_NICS,
        Capability.PCI_PASSTHROUGH,
        Capability.VSOCK,
        Capability.AGENT_CHANNEL,
        Capability.CONSOLE,
        Capability.GRACEFUL_STOP,
        Capability.ADOPT,
        PAUSE,
        SNAPSHOT,
        HOTPLUG,
    }
)
#: The Cloud Hypervisor release whose contract this backend is built against.
CONTRACT_VERSION = 54
#: The device KVM is opened through.
KVM_DEVICE = Path("/dev/kvm")
#: Longest wait for ``cloud-hypervisor --version``.
VERSION_TIMEOUT = 10.0


def _settings(context: PluginContext) -> CloudHypervisorSettings:
    assert isinstance(context.options, CloudHypervisorSettings)
    return context.options


@hookimpl
def volant_settings() -> list[type[BaseModel]]:
    """``VOLANT_CLOUD_HYPERVISOR_BINARY`` and ``VOLANT_CLOUD_HYPERVISOR_CONSOLE_LOG_MAX_BYTES``."""
    return [CloudHypervisorSettings]


@hookimpl
def volant_hypervisors() -> list[HypervisorDescriptor]:
    """Register ``cloud-hypervisor``."""
    return [
        HypervisorDescriptor(
            name="cloud-hypervisor",
            factory=CloudHypervisorLauncher.from_context,
            description="Cloud Hypervisor (KVM, PVH direct kernel boot, hybrid vsock agent channel)",
            capabilities=CAPABILITIES,
            available=lambda context: missing_binary_reason(_settings(context).binary),
        )
    ]


@hookimpl
def volant_host_checks() -> list[HostCheck]:
    """``volar doctor`` checks: the binary and its version, and ``/dev/kvm``."""
    return [
        HostCheck(name="cloud-hypervisor-binary", run=check_binary),
        HostCheck(name="cloud-hypervisor-kvm", run=check_kvm),
    ]


def check_binary(context: PluginContext) -> HostCheckResult:
    """Pass when the binary is found and reports the contract's major version (v54)."""
    if context.options is None:
        return HostCheckResult(
            "fail", "the cloud-hypervisor settings are invalid", fix=f"fix {BINARY_VARIABLE}"
        )
    wanted = _settings(context).binary
    binary = find_binary(wanted)
    if binary is None:
        return HostCheckResult(
            "fail", missing_binary_reason(wanted) or "not found", fix=f"set {BINARY_VARIABLE}"
        )
    try:
        done = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return HostCheckResult("fail", f"{binary} --version failed: {exc}", fix=f"set {BINARY_VARIABLE}")
    found = re.search(r"v?(\d+)\.(\d+)", done.stdout)
    if done.returncode != 0 or found is None:
        return HostCheckResult(
            "fail",
            f"{binary} --version gave no version: {done.stdout.strip()[:200]!r}",
            fix=f"set {BINARY_VARIABLE}",
        )
    version = f"{found.group(1)}.{found.group(2)}"
    if int(found.group(1)) != CONTRACT_VERSION:
        return HostCheckResult(
            "warn",
            f"{binary} is v{version}; Volant is built against the v{CONTRACT_VERSION} contract",
            fix=f"install Cloud Hypervisor v{CONTRACT_VERSION} or set {BINARY_VARIABLE}",
        )
    return HostCheckResult("pass", f"using {binary} (v{version})")


def check_kvm(context: PluginContext) -> HostCheckResult:
    """Pass when ``/dev/kvm`` opens read-write (Cloud Hypervisor has no emulation fallback)."""
    try:
        os.close(os.open(KVM_DEVICE, os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        return HostCheckResult(
            "fail",
            f"{KVM_DEVICE} cannot be opened ({exc.strerror}): Cloud Hypervisor needs KVM",
            fix=f"enable KVM and give volantd's user access to {KVM_DEVICE} (group kvm)",
        )
    return HostCheckResult("pass", f"{KVM_DEVICE} opens")
