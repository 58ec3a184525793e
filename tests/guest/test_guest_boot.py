"""One real boot: QEMU (TCG) runs the built kernel and initramfs; kestrel serves a 16 KiB manifest
delivered as an initramfs layer and powers off on the ACPI power button."""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Callable

import pytest
from guest_http import AgentConnection
from guest_qemu import BootedGuest

from volant_core.agent.constants import MANIFEST_FILE, READY_LINE, WORKLOAD_READY_LINE
from volant_core.guest import file_layer

BOOT_TIMEOUT = 120.0
POWEROFF_TIMEOUT = 30.0


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


def assert_survives_reconnects(guest: BootedGuest, workload_pid: int) -> None:
    """The serial channel serves a new host after the previous one left, even mid-request."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dropped:
        dropped.connect(str(guest.agent_socket))
        dropped.sendall(b"GET /v1/hea")
    for _ in range(3):
        agent = AgentConnection(str(guest.agent_socket), timeout=BOOT_TIMEOUT)
        try:
            assert agent.wait_health("ok", BOOT_TIMEOUT)["workload_pid"] == workload_pid
        finally:
            agent.close()


@pytest.mark.e2e
def test_boot_serve_manifest_and_power_off(boot_guest: Callable[..., BootedGuest]) -> None:
    manifest = big_manifest()
    document = json.dumps(manifest).encode()
    guest = boot_guest(file_layer({MANIFEST_FILE: document}))
    agent = AgentConnection(str(guest.agent_socket), timeout=BOOT_TIMEOUT)
    try:
        health = agent.wait_health("ok", BOOT_TIMEOUT)
        assert isinstance(health["workload_pid"], int)
        assert agent.request("GET", "/v1/manifest").json() == manifest
        proxied = agent.request("GET", "/v1/manifest.json")
        assert (proxied.status, proxied.body) == (200, document)
    finally:
        agent.close()
    assert_survives_reconnects(guest, health["workload_pid"])
    console = guest.console()
    assert READY_LINE in console and WORKLOAD_READY_LINE in console

    qmp = guest.qmp()
    try:
        qmp.command("system_powerdown")
    finally:
        qmp.close()
    assert guest.wait_exit(POWEROFF_TIMEOUT) == 0, guest.console()[-3000:]
    assert "kestrel: power button pressed" in guest.console()
