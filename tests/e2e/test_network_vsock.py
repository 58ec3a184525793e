"""Network mode ``vsock`` on QEMU: a booted guest with no tap on the host and no NIC in the guest,
in a network namespace of the test's own; agent proxy, actions, logs and the console still work
(over QEMU's virtio-serial ports, the hypervisor's own channel).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from volant_core.guest import GuestArtifacts
from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.netns import NetworkNamespace, network_namespace
from volant_core.testing.pytest_plugin import require_qemu

pytestmark = pytest.mark.e2e

#: Longest the console may take to show what the test waits for (a TCG guest is slow).
CONSOLE_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def vsock_web(
    volant_guest: GuestArtifacts, hello_manifest_module: dict[str, Any]
) -> Iterator[tuple[NetworkNamespace, RunningDaemon]]:
    """A namespace with volantd inside, whose default network mode is ``vsock``, and guest ``web``
    of examples/hello-http running.
    """
    require_qemu()
    with network_namespace() as ns, ns.enter(), running_daemon(volant_guest, network_mode="vsock") as daemon:
        assert daemon.request("POST", "/api/v1/plugins", hello_manifest_module).status == 201
        assert daemon.request("POST", "/api/v1/vms", {"name": "web", "plugin": "hello-http"}).status == 201
        assert daemon.wait_for_status("web", {"running", "crashed"})["status"] == "running"
        yield ns, daemon


def test_no_tap_and_no_address(vsock_web: tuple[NetworkNamespace, RunningDaemon]) -> None:
    ns, daemon = vsock_web
    vm = daemon.request("GET", "/api/v1/vms/web").json()
    assert vm["network_mode"] == "vsock" and vm["ip_address"] is None
    assert ns.links() == []  # not a tap, not a bridge: nothing but lo


def test_agent_proxy_actions_and_logs(vsock_web: tuple[NetworkNamespace, RunningDaemon]) -> None:
    _ns, daemon = vsock_web
    hello = daemon.request("GET", "/api/v1/vms/web/agent/v1/")
    assert hello.status == 200 and hello.json()["path"] == "/"
    echo = daemon.request("POST", "/api/v1/vms/web/actions/echo", {"over": "vsock"})
    assert echo.status == 200 and echo.json() == {"echo": {"over": "vsock"}, "path": "/echo"}
    logs = daemon.request("GET", "/api/v1/vms/web/logs?tail=400")
    assert logs.status == 200 and b'echo {"over": "vsock"}' in logs.body  # the workload's own output


def read_until(console: ClientConnection, needle: bytes) -> bytes:
    """What the console showed until ``needle`` appeared in it."""
    seen = b""
    deadline = time.monotonic() + CONSOLE_TIMEOUT_S
    while needle not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{needle!r} never appeared on the console:\n{seen!r}")
        try:
            message = console.recv(timeout=remaining)
        except TimeoutError:
            continue
        seen += message if isinstance(message, bytes) else message.encode()
    return seen


def test_the_console_shows_a_guest_without_network_interfaces(
    vsock_web: tuple[NetworkNamespace, RunningDaemon],
) -> None:
    _ns, daemon = vsock_web
    url = daemon.url.replace("http://", "ws://") + "/ws/v1/vms/web/console"
    with connect(url, open_timeout=30) as console:
        console.send(b"\r")
        read_until(console, b"# ")
        # The quotes keep the echo of the typed command from matching: only the answer has " end".
        console.send(b"echo nic''s: $(ls /sys/class/net | tr '\\n' ' ')end\r")
        assert b"nics: lo end" in read_until(console, b" end\r\n")
