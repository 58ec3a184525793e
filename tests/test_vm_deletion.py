"""Deleting a VM removes its row and its runtime directory together: a delete the store refuses
halfway leaves the VM whole, and one a stopped daemon left halfway is finished at the next start.

A real volantd on the test-host-process backend; the fault is a real one, the state database
locked by a ``sqlite3`` connection in another process while the row is deleted.
"""

from __future__ import annotations

from pathlib import Path

from volant_core.orchestrator import vmdirs
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.store_faults import database_locked


def _stopped_vm(api: RunningDaemon, name: str) -> Path:
    """Create VM ``name``, wait for it to run, stop it; its runtime directory."""
    assert api.request("POST", "/api/v1/vms", {"name": name, "plugin": "hello-host"}).status == 201
    runtime_dir = Path(api.wait_for_status(name, {"running"})["runtime_dir"])
    assert api.request("POST", f"/api/v1/vms/{name}/stop").status == 200
    assert runtime_dir.is_dir()
    return runtime_dir


def test_a_delete_the_store_refuses_leaves_the_vm_whole(host_api: RunningDaemon) -> None:
    runtime_dir = _stopped_vm(host_api, "kept")
    with database_locked(host_api.daemon.settings.db_path):
        refused = host_api.request("DELETE", "/api/v1/vms/kept")
    assert refused.status == 503, refused.body
    assert host_api.request("GET", "/api/v1/vms/kept").json()["status"] == "stopped"
    assert runtime_dir.is_dir()
    assert [p.name for p in runtime_dir.parent.iterdir()] == ["kept"]
    assert host_api.request("DELETE", "/api/v1/vms/kept").status == 204
    assert not runtime_dir.exists()
    assert list(runtime_dir.parent.iterdir()) == []


def test_a_delete_a_stopped_daemon_left_halfway_is_finished_at_the_next_start(
    host_api: RunningDaemon,
) -> None:
    runtime_dir = _stopped_vm(host_api, "half")
    record = host_api.daemon.store.vms.get_by_name("half")
    # what a daemon killed between renaming the directory aside and deleting the row leaves
    vmdirs.set_aside(record.id, "half", runtime_dir)
    host_api.restart()
    assert host_api.request("GET", "/api/v1/vms/half").status == 404
    assert list(runtime_dir.parent.iterdir()) == []
    deleted = [e for e in host_api.daemon.store.events.since(0) if e.type == "VM_DELETED"]
    assert [e.vm_name for e in deleted] == ["half"]


def test_deleting_a_running_vm_announces_it_stopped_then_deleted_without_a_pid(
    host_api: RunningDaemon,
) -> None:
    assert host_api.request("POST", "/api/v1/vms", {"name": "gone", "plugin": "hello-host"}).status == 201
    assert host_api.wait_for_status("gone", {"running"})["pid"] is not None
    assert host_api.request("DELETE", "/api/v1/vms/gone").status == 204
    events = [e.payload for e in host_api.daemon.store.events.since(0) if e.vm_name == "gone"]
    assert [(e["type"], e["status"], e["data"]["pid"]) for e in events[-3:]] == [
        ("VM_STOPPING", "stopping", events[-3]["data"]["pid"]),
        ("VM_STOPPED", "stopped", None),
        ("VM_DELETED", "stopped", None),
    ]
    assert events[-3]["data"]["pid"] is not None
