"""One real boot through the QEMU plugin (TCG): the built kernel and initramfs; kestrel serves a
16 KiB manifest delivered as an initramfs layer and powers off on the ACPI power button."""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from volant_qemu.accel import ACCEL_ENV
from volant_qemu.binary import find_binary, missing_binary_reason
from volant_qemu.instance import REAP_TIMEOUT, QemuInstance
from volant_qemu.launcher import QemuLauncher

from volant_core.agent.constants import MANIFEST_FILE, READY_LINE, WORKLOAD_READY_LINE
from volant_core.agent_client import AgentClient
from volant_core.guest import BASE_KERNEL_ARGS, GuestArtifacts, file_layer
from volant_core.launch import LaunchSpec

BOOT_TIMEOUT = 120.0
POWEROFF_TIMEOUT = 30.0


@pytest.fixture
def vm_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short VM directory (UNIX socket paths must stay under 108 bytes), removed after the test.

    QEMU must be installed; it is forced to TCG.
    """
    if find_binary() is None:
        pytest.skip(missing_binary_reason() or "QEMU is not installed")
    monkeypatch.setenv(ACCEL_ENV, "tcg")
    base = Path(tempfile.mkdtemp(prefix="vg-"))
    base.chmod(0o711)  # QEMU runs as the VMM user: it must reach vm_dir
    try:
        yield base / "vm"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def booted(guest: GuestArtifacts, vm_dir: Path, layer: bytes) -> Iterator[QemuInstance]:
    """QEMU booting the base initramfs with ``layer`` appended; killed and reaped on exit, pass or fail."""
    vm_dir.mkdir(parents=True)
    initramfs = vm_dir / "initramfs"
    initramfs.write_bytes(guest.initramfs.read_bytes() + layer)
    spec = LaunchSpec(
        name="guest-boot",
        vm_dir=vm_dir,
        cpu_cores=1,
        memory_mb=384,
        kernel=guest.kernel,
        vsock_cid=3,
        initramfs=initramfs,
        kernel_args=BASE_KERNEL_ARGS,
    )
    instance = QemuLauncher().launch(spec)
    try:
        yield instance
    finally:
        instance.kill()
        instance.wait(REAP_TIMEOUT)


def console(instance: QemuInstance) -> str:
    """Everything the guest printed on its serial console so far."""
    log = instance.console_log
    return log.read_text(errors="replace") if log is not None and log.exists() else ""


def big_manifest() -> dict[str, object]:
    """A manifest of at least 16 KiB whose random env values do not compress."""
    manifest: dict[str, object] = {
        "name": "pyhttp",
        "version": "1.0.0",
        "workload": {
            "type": "http",
            "base_url": "http://127.0.0.1:8081",
            "entrypoint": ["/usr/bin/python3", "-m", "http.server", "8081", "--bind", "127.0.0.1"],
            "workdir": "/volant",
            "env": {f"RANDOM_{i:03d}": secrets.token_urlsafe(96) for i in range(140)},
        },
        "health_check": {"endpoint": "/manifest.json", "timeout_ms": 60000},
    }
    assert len(json.dumps(manifest)) >= 16 * 1024
    return manifest


def assert_survives_reconnects(instance: QemuInstance, workload_pid: int) -> None:
    """The serial channel serves a new host after the previous one left, even mid-request."""
    with instance.agent_channel.connect(BOOT_TIMEOUT) as dropped:
        dropped.sendall(b"GET /v1/hea")
    for _ in range(3):
        agent = AgentClient(instance.agent_channel)
        try:
            assert agent.wait_healthy(BOOT_TIMEOUT, alive=instance.alive)["workload_pid"] == workload_pid
        finally:
            agent.close()


@pytest.mark.e2e
def test_boot_serve_manifest_and_power_off(volant_guest: GuestArtifacts, vm_dir: Path) -> None:
    manifest = big_manifest()
    document = json.dumps(manifest).encode()
    with booted(volant_guest, vm_dir, file_layer({MANIFEST_FILE: document})) as instance:
        agent = AgentClient(instance.agent_channel)
        try:
            health = agent.wait_healthy(BOOT_TIMEOUT, alive=instance.alive)
            assert health["status"] == "ok" and isinstance(health["workload_pid"], int)
            assert agent.get("/v1/manifest").json() == manifest
            proxied = agent.get("/v1/manifest.json")
            assert (proxied.status, proxied.body) == (200, document)
        finally:
            agent.close()  # a serial port carries one host connection at a time
        assert_survives_reconnects(instance, health["workload_pid"])
        output = console(instance)
        assert READY_LINE in output and WORKLOAD_READY_LINE in output

        with instance.qmp() as qmp:
            qmp.execute("system_powerdown")
        assert instance.wait(POWEROFF_TIMEOUT) == 0, console(instance)[-3000:]
        assert "kestrel: power button pressed" in console(instance)
