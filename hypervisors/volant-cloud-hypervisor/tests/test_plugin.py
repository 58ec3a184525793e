"""The plugin as Volant loads it: entry point, hypervisor descriptor, capabilities, settings, and the
``volar doctor`` checks (binary and version against the contract's, ``/dev/kvm``).
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from volant_cloud_hypervisor import plugin
from volant_cloud_hypervisor.launcher import CloudHypervisorLauncher
from volant_cloud_hypervisor.settings import CloudHypervisorSettings

from volant_core.context import PluginContext
from volant_core.errors import ValidationError
from volant_core.launch import Capability
from volant_core.plugin_settings import resolve_options
from volant_core.settings import load_settings


def _context(**options: str) -> PluginContext:
    return PluginContext("cloud-hypervisor", load_settings({}), CloudHypervisorSettings(**options))


def test_entry_point_and_descriptor() -> None:
    (ep,) = [ep for ep in entry_points(group="volant.plugins") if ep.name == "cloud-hypervisor"]
    assert ep.load() is plugin
    (descriptor,) = plugin.volant_hypervisors()
    assert descriptor.name == "cloud-hypervisor"
    assert isinstance(descriptor.factory(_context()), CloudHypervisorLauncher)
    # The agent channel is its own (hybrid vsock): the vsock network mode accepts it. No emulation,
    # and no raw QEMU arguments.
    assert {Capability.AGENT_CHANNEL, Capability.VSOCK, Capability.PCI_PASSTHROUGH} <= descriptor.capabilities
    assert {"pause", "snapshot", "hotplug"} <= descriptor.capabilities
    assert not {Capability.TCG, Capability.RAW_ARGUMENTS} & descriptor.capabilities


def test_available_says_how_to_install_a_missing_binary(standin: Path) -> None:
    (descriptor,) = plugin.volant_hypervisors()
    assert descriptor.available is not None
    assert descriptor.available(_context(binary=str(standin))) is None
    reason = descriptor.available(_context(binary="/nonexistent/cloud-hypervisor"))
    assert reason is not None and "releases" in reason and "VOLANT_CLOUD_HYPERVISOR_BINARY" in reason


def _fake_binary(directory: Path, version_line: str) -> Path:
    binary = directory / "cloud-hypervisor"
    binary.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    binary.chmod(0o755)
    return binary


def test_doctor_checks_the_binary_and_its_version(standin: Path, tmp_path: Path) -> None:
    checks = {check.name: check.run for check in plugin.volant_host_checks()}
    assert set(checks) == {"cloud-hypervisor-binary", "cloud-hypervisor-kvm"}
    passed = checks["cloud-hypervisor-binary"](_context(binary=str(standin)))
    assert passed.status == "pass" and "v54.0" in passed.detail
    older = checks["cloud-hypervisor-binary"](
        _context(binary=str(_fake_binary(tmp_path, "cloud-hypervisor v48.0.0")))
    )
    assert older.status == "warn" and "v54" in older.detail
    assert checks["cloud-hypervisor-binary"](_context(binary="/nonexistent/ch")).status == "fail"


def test_doctor_checks_dev_kvm() -> None:
    result = plugin.check_kvm(_context())
    opens = os.access("/dev/kvm", os.R_OK | os.W_OK)
    assert result.status == ("pass" if opens else "fail")
    if not opens:
        assert "/dev/kvm" in result.detail and result.fix


def test_settings_are_validated_and_named() -> None:
    with pytest.raises(ValidationError, match="VOLANT_CLOUD_HYPERVISOR_CONSOLE_LOG_MAX_BYTES"):
        resolve_options(
            "cloud-hypervisor",
            CloudHypervisorSettings,
            {"VOLANT_CLOUD_HYPERVISOR_CONSOLE_LOG_MAX_BYTES": "10"},
        )
    with pytest.raises(ValidationError, match="no such setting"):
        resolve_options("cloud-hypervisor", CloudHypervisorSettings, {"VOLANT_CLOUD_HYPERVISOR_BINRY": "x"})
