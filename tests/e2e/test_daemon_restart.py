"""volantd killed with -9 while real guests run, then started again: every VM is accounted for."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core.guest import GuestArtifacts
from volant_core.store import open_store
from volant_core.testing.daemon import volantd_process, wait_for_vm_status
from volant_core.testing.processes import pid_alive, processes_mentioning, scratch_dir
from volant_core.testing.waiting import eventually, free_port

pytestmark = pytest.mark.e2e

KEPT = ("keep-a", "keep-b", "keep-c")
NAMES = (*KEPT, "lost-d")


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A short state directory; every process naming it is killed at the end."""
    with scratch_dir("vd-") as path:
        yield path


def test_restart_readopts_running_guests_and_reports_the_dead_one(
    volant_guest: GuestArtifacts, hello_manifest: dict[str, Any], state_dir: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "VOLANT_KERNEL": str(volant_guest.kernel),
        "VOLANT_INITRAMFS": str(volant_guest.initramfs),
    }
    with volantd_process(state_dir, port, env=env) as first:
        api = first.client(timeout=120)
        assert api.send("POST", "/api/v1/plugins", hello_manifest).status == 201
        for name in NAMES:
            assert api.send("POST", "/api/v1/vms", {"name": name, "plugin": "hello-http"}).status == 201
        vms = {name: wait_for_vm_status(api, name, {"running"}, timeout=180) for name in NAMES}
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(30)
    # The guests outlive their daemon; one of them dies while nobody watches.
    assert all(pid_alive(vm["pid"]) for vm in vms.values())
    os.kill(vms["lost-d"]["pid"], signal.SIGKILL)

    with volantd_process(state_dir, port, env=env) as second:
        api = second.client(timeout=120)
        lost = wait_for_vm_status(api, "lost-d", {"crashed"}, timeout=30)
        assert "gone when volantd started" in lost["status_reason"]
        assert not list(Path(lost["runtime_dir"]).glob("*.sock"))
        for name in KEPT:
            vm = api.json("GET", f"/api/v1/vms/{name}")
            assert vm["status"] == "running" and vm["pid"] == vms[name]["pid"]
            answer = api.send("GET", f"/api/v1/vms/{name}/agent/v1/")
            assert answer.status == 200 and json.loads(answer.body)["path"] == "/"
        # Each state change was one event: re-adoption repeats none, the death is one crash.
        events = open_store(state_dir / "state.db").events.since(0)
        types = {name: [e.type for e in events if e.vm_name == name] for name in NAMES}
        assert all(types[name] == ["VM_CREATED", "VM_STARTING", "VM_RUNNING"] for name in KEPT), types
        assert types["lost-d"] == ["VM_CREATED", "VM_STARTING", "VM_RUNNING", "VM_CRASHED"]
        # Re-adopted VMs are controllable.
        for name in KEPT:
            assert api.json("POST", f"/api/v1/vms/{name}/stop")["status"] == "stopped"
            eventually(lambda pid=vms[name]["pid"]: not pid_alive(pid), f"{name}'s QEMU gone", timeout=10)
        for name in NAMES:
            assert api.send("DELETE", f"/api/v1/vms/{name}").status == 204
        assert api.json("GET", "/api/v1/vms") == []
        assert processes_mentioning(str(state_dir / "run")) == []
