"""Crashes and clean stops of real QEMU guests, as the orchestrator reports them."""

from __future__ import annotations

import copy
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.processes import processes_mentioning

pytestmark = pytest.mark.e2e


def _events(api: RunningDaemon, name: str) -> list[Any]:
    return [e for e in api.daemon.store.events.since(0) if e.vm_name == name]


def _boot(api: RunningDaemon, manifest: dict[str, Any], name: str) -> dict[str, Any]:
    api.request("POST", "/api/v1/plugins", manifest)
    created = api.request("POST", "/api/v1/vms", {"name": name, "plugin": manifest["name"]})
    assert created.status == 201, created.body
    vm = api.wait_for_status(name, {"running", "crashed"})
    assert vm["status"] == "running", vm
    return vm


def test_kill_9_of_the_vmm_is_a_crash_within_5_seconds(
    volantd_with_guest: RunningDaemon, hello_manifest: dict[str, Any]
) -> None:
    api = volantd_with_guest
    vm = _boot(api, hello_manifest, "victim")
    os.kill(vm["pid"], signal.SIGKILL)
    killed_at = time.monotonic()
    crashed = api.wait_for_status("victim", {"crashed", "stopped"}, timeout=5)
    assert time.monotonic() - killed_at < 5
    assert crashed["status"] == "crashed" and crashed["pid"] is None
    assert "status -9" in crashed["status_reason"]
    last = _events(api, "victim")[-1]
    assert last.type == "VM_CRASHED" and last.payload["data"]["exit_status"] == -9
    assert processes_mentioning(vm["runtime_dir"]) == []
    assert not list(Path(vm["runtime_dir"]).glob("*.sock"))


def test_stop_powers_the_guest_off_cleanly(volantd_with_guest: RunningDaemon, hello_manifest: dict) -> None:
    api = volantd_with_guest
    vm = _boot(api, hello_manifest, "polite")
    stopped = api.request("POST", "/api/v1/vms/polite/stop").json()
    assert stopped["status"] == "stopped"
    last = _events(api, "polite")[-1]
    assert last.type == "VM_STOPPED" and last.payload["data"]["exit_status"] == 0
    console = (Path(vm["runtime_dir"]) / "console.log").read_text(errors="replace")
    assert "kestrel: power button pressed" in console


def test_an_unhealthy_workload_under_on_unhealthy_stop_powers_the_guest_off(
    volant_guest: Any, hello_manifest: dict
) -> None:
    manifest = copy.deepcopy(hello_manifest)
    manifest["name"] = manifest["runtime"] = "fades"
    # The same server, but its health endpoint fails from 8 s after start.
    script = manifest["workload"]["entrypoint"][2]
    manifest["workload"]["entrypoint"][2] = script.replace(
        'if self.path == "/healthz":',
        'if self.path == "/healthz" and time.time() - started > 8:\n'
        "            self.send_error(503)\n"
        "            return\n"
        '        if self.path == "/healthz":',
    )
    with running_daemon(volant_guest, health_interval=1, health_failures=2) as api:
        api.request("POST", "/api/v1/plugins", manifest)
        body = {"name": "fading", "plugin": "fades", "config": {"on_unhealthy": "stop"}}
        assert api.request("POST", "/api/v1/vms", body).status == 201
        vm = api.wait_for_status("fading", {"running", "crashed"})
        assert vm["status"] == "running", vm
        stopped = api.wait_for_status("fading", {"stopped", "crashed"}, timeout=60)
        assert stopped["status"] == "stopped", stopped
        assert "on_unhealthy: stop" in stopped["status_reason"] and "503" in stopped["status_reason"]
        events = _events(api, "fading")
        assert [e.type for e in events][-4:] == ["VM_RUNNING", "VM_UNHEALTHY", "VM_STOPPING", "VM_STOPPED"]
        # The guest was powered off (the ACPI button), not killed.
        assert events[-1].payload["data"]["exit_status"] == 0
        console = (Path(vm["runtime_dir"]) / "console.log").read_text(errors="replace")
        assert "kestrel: power button pressed" in console
        assert processes_mentioning(vm["runtime_dir"]) == []
