"""A real guest booted with QEMU through the HTTP API: create, run, stop, start, delete."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.processes import pid_alive, processes_mentioning
from volant_core.testing.waiting import eventually

pytestmark = pytest.mark.e2e


def _event_types(daemon: RunningDaemon, name: str) -> list[str]:
    return [e.type for e in daemon.daemon.store.events.since(0) if e.vm_name == name]


def test_lifecycle_through_the_api(volantd_with_guest: RunningDaemon, hello_manifest: dict[str, Any]) -> None:
    api = volantd_with_guest
    assert api.request("POST", "/api/v1/plugins", hello_manifest).status == 201

    created = api.request("POST", "/api/v1/vms", {"name": "life", "plugin": "hello-http"})
    assert created.status == 201, created.body
    assert created.json()["status"] == "starting"
    vm = api.wait_for_status("life", {"running", "crashed"})
    assert vm["status"] == "running", vm

    # running means the agent answered: the event that says so carries kestrel's health answer,
    # and the guest console shows the workload passed its health check.
    running = [e for e in api.daemon.store.events.since(0) if e.type == "VM_RUNNING"]
    assert running and running[0].payload["data"]["agent"]["status"] == "ok"
    assert _event_types(api, "life") == ["VM_CREATED", "VM_STARTING", "VM_RUNNING"]
    console = Path(vm["runtime_dir"]) / "console.log"
    assert "kestrel: workload healthy" in console.read_text(errors="replace")

    assert vm["accelerator"] in {"tcg", "kvm"}
    pid = vm["pid"]
    assert pid_alive(pid) and b"qemu-system" in Path(f"/proc/{pid}/cmdline").read_bytes()

    answer = api.request("GET", "/api/v1/vms/life/agent/v1/")
    assert answer.status == 200
    assert answer.json()["message"] == hello_manifest["workload"]["env"]["GREETING"]

    stopped = api.request("POST", "/api/v1/vms/life/stop")
    assert stopped.status == 200 and stopped.json()["status"] == "stopped"
    assert stopped.json()["pid"] is None
    eventually(lambda: not pid_alive(pid), "QEMU gone after stop", timeout=10)
    assert api.request("GET", "/api/v1/vms/life/agent/v1/health").status == 409

    restarted = api.request("POST", "/api/v1/vms/life/start")
    assert restarted.status == 200 and restarted.json()["status"] == "starting"
    vm = api.wait_for_status("life", {"running", "crashed"})
    assert vm["status"] == "running", vm
    new_pid = vm["pid"]
    assert new_pid != pid and pid_alive(new_pid)

    runtime_dir = Path(vm["runtime_dir"])
    assert api.request("DELETE", "/api/v1/vms/life").status == 204
    assert api.request("GET", "/api/v1/vms/life").status == 404
    eventually(lambda: not pid_alive(new_pid), "QEMU gone after delete", timeout=10)
    assert processes_mentioning(str(runtime_dir)) == []
    assert not runtime_dir.exists()
    store = api.daemon.store
    assert store.vms.list() == [] and store.ips.leased() == []
    assert _event_types(api, "life")[-3:] == ["VM_STOPPING", "VM_STOPPED", "VM_DELETED"]


def test_a_guest_whose_workload_never_gets_healthy_is_never_running(
    volant_guest: Any, hello_manifest: dict[str, Any]
) -> None:
    manifest = copy.deepcopy(hello_manifest)
    manifest["name"] = manifest["runtime"] = "never-healthy"
    # The workload listens on 8000; its health is checked where nothing listens.
    manifest["workload"]["base_url"] = "http://127.0.0.1:8009"
    manifest["health_check"] = {"endpoint": "/healthz", "timeout_ms": 2000}
    with running_daemon(volant_guest, boot_timeout=25) as api:
        api.request("POST", "/api/v1/plugins", manifest)
        assert api.request("POST", "/api/v1/vms", {"name": "sick", "plugin": "never-healthy"}).status == 201
        vm = api.wait_for_status("sick", {"running", "crashed"}, timeout=90)
        assert vm["status"] == "crashed"
        assert "never became healthy" in vm["status_reason"]
        assert "VM_RUNNING" not in _event_types(api, "sick")
        assert processes_mentioning(vm["runtime_dir"]) == []


def test_manifest_of_16_kib_reaches_the_guest_intact(
    volantd_with_guest: RunningDaemon, hello_manifest: dict[str, Any]
) -> None:
    from volant_core.manifest import encode_for_guest, parse_manifest

    manifest = copy.deepcopy(hello_manifest)
    manifest["name"] = manifest["runtime"] = "big"
    # Random values do not compress: the encoded manifest grows with them.
    env = manifest["workload"]["env"]
    while len(encode_for_guest(parse_manifest(manifest))) < 16 * 1024:
        env[f"PAD_{len(env)}"] = os.urandom(96).hex()
    api = volantd_with_guest
    assert api.request("POST", "/api/v1/plugins", manifest).status == 201
    assert api.request("POST", "/api/v1/vms", {"name": "big", "plugin": "big"}).status == 201
    vm = api.wait_for_status("big", {"running", "crashed"})
    assert vm["status"] == "running", vm
    reported = api.request("GET", "/api/v1/vms/big/agent/v1/manifest")
    assert reported.status == 200
    installed = api.request("GET", "/api/v1/plugins/big").json()
    assert reported.json() == installed
    assert reported.json()["workload"]["env"] == parse_manifest(manifest).workload.env
