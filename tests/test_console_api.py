"""The console route's refusals, answered as plain HTTP before any upgrade: a VM whose hypervisor
offers no serial console (the ``test-host-process`` backend has none), a stopped or unknown VM, a
request that is no WebSocket opening. The console itself is tested on real guests in
tests/e2e/test_console.py.
"""

from __future__ import annotations

import http.client
import urllib.parse
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from volant_core.testing.daemon import RunningDaemon


@pytest.fixture
def host_vm(volantd_host_process: RunningDaemon, host_manifest: dict[str, Any]) -> RunningDaemon:
    """The host-process daemon with one running VM, ``box``."""
    api = volantd_host_process
    assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
    assert api.request("POST", "/api/v1/vms", {"name": "box", "plugin": "hello-host"}).status == 201
    assert api.wait_for_status("box", {"running", "crashed"}, timeout=60)["status"] == "running"
    return api


def refusal(api: RunningDaemon, name: str) -> tuple[int, bytes]:
    """Status and body of the answer to a WebSocket opening for VM ``name``'s console."""
    with pytest.raises(InvalidStatus) as refused:
        connect(api.url.replace("http://", "ws://") + f"/ws/v1/vms/{name}/console", open_timeout=30)
    return refused.value.response.status_code, bytes(refused.value.response.body or b"")


def test_a_hypervisor_without_a_serial_console_gets_a_conflict(host_vm: RunningDaemon) -> None:
    status, body = refusal(host_vm, "box")
    assert status == 409 and b"no serial console" in body


def test_a_stopped_or_unknown_vm_is_refused_before_the_upgrade(host_vm: RunningDaemon) -> None:
    assert host_vm.request("POST", "/api/v1/vms/box/stop").status == 200
    status, body = refusal(host_vm, "box")
    assert status == 409 and b"volar vms start box" in body
    assert refusal(host_vm, "ghost")[0] == 404
    assert refusal(host_vm, "..%2Fetc")[0] in (404, 422)


def test_an_upgrade_without_a_websocket_key_names_the_problem(host_vm: RunningDaemon) -> None:
    address = urllib.parse.urlsplit(host_vm.url)
    conn = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
    conn.request(
        "GET",
        "/ws/v1/vms/box/console",
        headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"},
    )
    answer = conn.getresponse()
    assert answer.status == 422
    assert b"Sec-WebSocket-Key" in answer.read()
    conn.close()
