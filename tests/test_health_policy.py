"""A workload that fails its health check is ``unhealthy`` and handled by the VM's ``on_unhealthy``
policy; an agent that does not answer at all is a crash.

A real volantd on the ``test-host-process`` backend: a real kestrel and workload per VM, no QEMU
(what is checked here does not depend on the hypervisor). The workload (tests/guest/workload_app.py)
passes its health check while its marker file exists: removing the file makes it unhealthy.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import host_process_daemon
from volant_core.testing.kestrel import gated_runtime
from volant_core.testing.waiting import eventually

WORKLOAD_APP = Path(__file__).parent / "guest" / "workload_app.py"


@pytest.fixture(scope="module")
def api() -> Iterator[RunningDaemon]:
    """volantd probing health every 0.2 s and acting after 2 bad answers in a row."""
    with host_process_daemon(health_interval=0.2, health_failures=2) as daemon:
        yield daemon


def install(api: RunningDaemon, directory: Path, name: str) -> Path:
    """Install a runtime ``name`` whose workload is healthy while the returned file exists (it does)."""
    ready = directory / f"{name}-ready"
    ready.touch()
    manifest = gated_runtime(name, WORKLOAD_APP, ready, health_timeout_ms=20000)
    assert api.request("POST", "/api/v1/plugins", manifest).status == 201
    return ready


def create(api: RunningDaemon, name: str, **config: Any) -> dict[str, Any]:
    """Create VM ``name`` of the runtime of the same name with ``config`` and wait until it runs."""
    answer = api.request("POST", "/api/v1/vms", {"name": name, "plugin": name, "config": config})
    assert answer.status == 201, answer.body
    return api.wait_for_status(name, {"running"}, timeout=60)


def vm(api: RunningDaemon, name: str) -> dict[str, Any]:
    """``GET /api/v1/vms/{name}``."""
    return api.request("GET", f"/api/v1/vms/{name}").json()


def events(api: RunningDaemon, name: str) -> list[Any]:
    """Every event about VM ``name``, oldest first."""
    return [e for e in api.daemon.store.events.since(0) if e.vm_name == name]


def types(api: RunningDaemon, name: str) -> list[str]:
    """The types of :func:`events`."""
    return [e.type for e in events(api, name)]


def test_by_default_an_unhealthy_workload_is_reported_and_the_vm_keeps_running(
    api: RunningDaemon, tmp_path: Path
) -> None:
    ready = install(api, tmp_path, "wobbly")
    running = create(api, "wobbly")
    assert running["health"] == "healthy" and running["health_reason"] is None
    config = api.request("GET", "/api/v1/vms/wobbly/config").json()["config"]
    assert config["on_unhealthy"] == "report"

    ready.unlink()
    sick = eventually(lambda: (v := vm(api, "wobbly"))["health"] == "unhealthy" and v, "wobbly unhealthy")
    assert sick["status"] == "running" and sick["pid"] == running["pid"]
    assert "health check" in sick["health_reason"] and "503" in sick["health_reason"]
    unhealthy = events(api, "wobbly")[-1]
    assert unhealthy.type == "VM_UNHEALTHY" and unhealthy.payload["message"] == sick["health_reason"]

    ready.touch()
    well = eventually(lambda: (v := vm(api, "wobbly"))["health"] == "healthy" and v, "wobbly healthy again")
    assert well["pid"] == running["pid"] and well["health_reason"] is None
    assert types(api, "wobbly")[-3:] == ["VM_RUNNING", "VM_UNHEALTHY", "VM_HEALTHY"]
    assert api.request("POST", "/api/v1/vms/wobbly/stop").json()["health"] is None


def test_stop_powers_an_unhealthy_vm_off_gracefully(api: RunningDaemon, tmp_path: Path) -> None:
    ready = install(api, tmp_path, "quitter")
    running = create(api, "quitter", on_unhealthy="stop")

    ready.unlink()
    stopped = api.wait_for_status("quitter", {"stopped", "crashed"}, timeout=30)
    assert stopped["status"] == "stopped", stopped
    assert "on_unhealthy: stop" in stopped["status_reason"] and "503" in stopped["status_reason"]
    assert types(api, "quitter")[-4:] == ["VM_RUNNING", "VM_UNHEALTHY", "VM_STOPPING", "VM_STOPPED"]
    # Powered off, not killed: kestrel was asked to shut down and exited on its own.
    assert events(api, "quitter")[-1].payload["data"]["exit_status"] == 0
    assert "kestrel: shutting down" in (Path(running["runtime_dir"]) / "kestrel.log").read_text()


def test_restart_boots_an_unhealthy_vm_again_up_to_max_restarts(api: RunningDaemon, tmp_path: Path) -> None:
    ready = install(api, tmp_path, "phoenix")
    first = create(api, "phoenix", on_unhealthy="restart", restart_policy={"max_restarts": 1})

    ready.unlink()
    eventually(lambda: types(api, "phoenix").count("VM_STARTING") == 2, "phoenix booting again")
    ready.touch()
    second = eventually(
        lambda: (v := vm(api, "phoenix"))["status"] == "running" and v["pid"] != first["pid"] and v,
        "phoenix running again in a new VMM",
    )
    assert types(api, "phoenix")[-6:] == [
        "VM_RUNNING",
        "VM_UNHEALTHY",
        "VM_STOPPING",
        "VM_STOPPED",
        "VM_STARTING",
        "VM_RUNNING",
    ]
    assert second["health"] == "healthy"

    # The one restart allowed is used: unhealthy again, the VM is stopped instead.
    ready.unlink()
    stopped = api.wait_for_status("phoenix", {"stopped", "crashed"}, timeout=30)
    assert stopped["status"] == "stopped", stopped
    assert "still unhealthy after 1 restarts" in stopped["status_reason"]
    assert types(api, "phoenix").count("VM_STARTING") == 2


def test_an_agent_that_does_not_answer_is_a_crash(api: RunningDaemon, tmp_path: Path) -> None:
    install(api, tmp_path, "frozen")
    running = create(api, "frozen", restart_policy={"mode": "never"})

    os.kill(running["pid"], signal.SIGSTOP)  # kestrel hangs: it answers nothing, the workload still runs
    crashed = api.wait_for_status("frozen", {"crashed", "stopped"}, timeout=60)
    assert crashed["status"] == "crashed", crashed
    assert "guest agent dead" in crashed["status_reason"]
    assert "VM_UNHEALTHY" not in types(api, "frozen")


def test_the_policy_changes_live_and_unknown_ones_are_refused_naming_the_field(
    api: RunningDaemon, tmp_path: Path
) -> None:
    ready = install(api, tmp_path, "tuned")
    refused = api.request(
        "POST", "/api/v1/vms", {"name": "tuned", "plugin": "tuned", "config": {"on_unhealthy": "reboot"}}
    )
    assert refused.status == 422
    assert refused.json()["error"]["details"][0]["field"] == "config.on_unhealthy"
    assert "'report', 'restart' or 'stop'" in refused.json()["error"]["message"]
    assert api.request("GET", "/api/v1/vms/tuned").status == 404

    create(api, "tuned")
    bad = api.request("PATCH", "/api/v1/vms/tuned/config", {"on_unhealthy": "ignore"})
    assert bad.status == 422 and bad.json()["error"]["details"][0]["field"] == "on_unhealthy"
    patched = api.request("PATCH", "/api/v1/vms/tuned/config", {"on_unhealthy": "stop"})
    assert patched.status == 200 and vm(api, "tuned")["restart_pending"] is False

    ready.unlink()  # the running VMM follows the new policy without a restart
    stopped = api.wait_for_status("tuned", {"stopped", "crashed"}, timeout=30)
    assert "on_unhealthy: stop" in stopped["status_reason"]
