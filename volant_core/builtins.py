"""The core's own hook implementations, registered first under the name ``core``.

They are the defaults a bare ``pip install volant-core`` works with: the
``none`` network mode (no NIC; the agent is reached over the hypervisor's own
channel), local, HTTP and Python-package boot sources, and lowest-free-address IP allocation,
registered ``trylast`` so any plugin can take over.
"""

from __future__ import annotations

import ipaddress
import os
import shutil

from volant_core import artifacts, hookimpl
from volant_core.context import PluginContext
from volant_core.descriptors import (
    BootSourceDescriptor,
    HostCheck,
    HostCheckResult,
    NetworkModeDescriptor,
    NoNetwork,
)
from volant_core.hostsetup import checks as hostsetup_checks
from volant_core.vmm_confinement import check_confinement


@hookimpl
def volant_network_modes() -> list[NetworkModeDescriptor]:
    """Register the ``none`` network mode."""
    return [
        NetworkModeDescriptor(
            name="none",
            factory=NoNetwork,
            description="no network interface; the agent is reached over the hypervisor's channel",
        )
    ]


@hookimpl
def volant_boot_sources() -> list[BootSourceDescriptor]:
    """Register local files (``/abs/path``, ``file://``), HTTP(S) downloads and files shipped in
    installed Python distributions (``package://<distribution>/<path>``).
    """
    return [
        BootSourceDescriptor("file", ("", "file"), artifacts.open_file, "local path on the host"),
        BootSourceDescriptor("http", ("http", "https"), artifacts.open_http, "HTTP(S) download"),
        BootSourceDescriptor(
            "package",
            (artifacts.PACKAGE_SCHEME,),
            artifacts.open_package,
            "file inside an installed Python distribution",
        ),
    ]


@hookimpl(trylast=True)
def volant_allocate_ip(
    vm_name: str, subnet: ipaddress.IPv4Network, taken: frozenset[str], reserved: frozenset[str]
) -> str | None:
    """The lowest address of ``subnet`` that is neither taken nor reserved, in numeric order."""
    for address in subnet.hosts():
        text = str(address)
        if text not in taken and text not in reserved:
            return text
    return None


def _check_state_dir(context: PluginContext) -> HostCheckResult:
    state = context.settings.state_dir
    existing = next((p for p in (state, *state.parents) if p.exists()), None)
    if existing is not None and existing.is_dir() and os.access(existing, os.W_OK):
        return HostCheckResult("pass", f"{state} is writable")
    return HostCheckResult("fail", f"cannot write {state}", "set VOLANT_STATE_DIR to a writable directory")


def _check_image_tools() -> HostCheckResult:
    missing = [tool for tool in GUEST_BUILD_TOOLS if shutil.which(tool) is None]
    if not missing:
        return HostCheckResult("pass", "apt-get, dpkg-deb, lz4 and python3.11 found")
    return HostCheckResult(
        "warn",
        f"missing {', '.join(missing)}: `volar image build` cannot build the guest image",
        "apt-get install lz4 python3.11 (or set VOLANT_KERNEL and VOLANT_INITRAMFS)",
    )


#: Programs the guest image builder runs.
GUEST_BUILD_TOOLS = ("apt-get", "dpkg-deb", "lz4", "python3.11")


@hookimpl
def volant_host_checks() -> list[HostCheck]:
    """The core's checks: a writable state directory, the guest image build tools, the VMMs'
    confinement (:mod:`volant_core.vmm_confinement`), and what
    ``volar setup`` sets up for bridged networking (:mod:`volant_core.hostsetup.checks`).
    """
    return [
        HostCheck("state-dir", _check_state_dir),
        HostCheck("guest-image-tools", _check_image_tools),
        HostCheck("vmm-confinement", check_confinement),
        *hostsetup_checks.HOST_CHECKS,
    ]
