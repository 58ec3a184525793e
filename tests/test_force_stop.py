"""Stopping and deleting a VM: gracefully by default, at once with ``force`` (also while it starts);
and what a refused request tells a user whose VM is still starting.

A real volantd on the ``test-host-process`` backend (a real kestrel and workload, no QEMU): a
graceful stop asks kestrel to shut down (it says so in its log and exits on its own), a forced one
kills it (exit status -9, and kestrel never says it shut down). A VM whose workload's health check does not
pass stays ``starting`` (tests/guest/workload_app.py passes it only once its marker file exists).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core.testing.cli import run_volar
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import host_process_daemon
from volant_core.testing.kestrel import gated_runtime
from volant_core.testing.processes import descendants
from volant_core.testing.waiting import eventually

WORKLOAD_APP = Path(__file__).parent / "guest" / "workload_app.py"
#: What kestrel writes to its log when asked to shut down (a graceful stop).
SHUTDOWN_LINE = "kestrel: shutting down"


@pytest.fixture(scope="module")
def api() -> Iterator[RunningDaemon]:
    """volantd waiting up to 10 minutes for a graceful stop (force must not wait for it)."""
    with host_process_daemon(stop_timeout=600) as daemon:
        yield daemon


def create(api: RunningDaemon, directory: Path, name: str, *, ready: bool) -> dict[str, Any]:
    """Create VM ``name`` (a runtime of its own); ``running`` when ``ready``, else kept ``starting``
    (its workload serves, but its health check fails).
    """
    marker = directory / f"{name}-ready"
    if ready:
        marker.touch()
    manifest = gated_runtime(name, WORKLOAD_APP, marker, health_timeout_ms=600_000)
    assert api.request("POST", "/api/v1/plugins", manifest).status == 201
    created = api.request("POST", "/api/v1/vms", {"name": name, "plugin": name})
    assert created.status == 201, created.body
    if ready:
        return api.wait_for_status(name, {"running"}, timeout=60)
    vm = created.json()
    assert vm["status"] == "starting"
    eventually(lambda: "workload listening" in kestrel_log(vm), f"{name}'s workload serving, unhealthy")
    return vm


def stop_event(api: RunningDaemon, name: str) -> Any:
    """The last ``VM_STOPPED`` event of VM ``name``."""
    return [e for e in api.daemon.store.events.since(0) if e.vm_name == name and e.type == "VM_STOPPED"][-1]


def vm_status(api: RunningDaemon, name: str) -> str:
    """The status of VM ``name`` now."""
    return str(api.request("GET", f"/api/v1/vms/{name}").json()["status"])


def kestrel_log(vm: dict[str, Any]) -> str:
    """What kestrel (and its workload) of ``vm`` printed so far."""
    log = Path(vm["runtime_dir"]) / "kestrel.log"
    return log.read_text(errors="replace") if log.exists() else ""


def test_force_stop_kills_a_running_vm_at_once(api: RunningDaemon, tmp_path: Path) -> None:
    vm = create(api, tmp_path, "blunt", ready=True)
    stopped = api.request("POST", "/api/v1/vms/blunt/stop?force=true").json()
    assert stopped["status"] == "stopped" and stopped["status_reason"] == "killed at once (force)"
    assert stop_event(api, "blunt").payload["data"]["exit_status"] == -signal.SIGKILL
    assert SHUTDOWN_LINE not in kestrel_log(vm)


def test_force_ends_a_graceful_stop_that_waits_for_the_guest(api: RunningDaemon, tmp_path: Path) -> None:
    vm = create(api, tmp_path, "stuck", ready=True)
    os.kill(vm["pid"], signal.SIGSTOP)  # frozen, kestrel cannot act on the shutdown it is asked for
    graceful: list[Any] = []
    waiting = threading.Thread(target=lambda: graceful.append(api.request("POST", "/api/v1/vms/stuck/stop")))
    waiting.start()
    forced = None
    try:
        eventually(lambda: vm_status(api, "stuck") == "stopping", "the graceful stop waiting for the guest")
        forced = api.request("POST", "/api/v1/vms/stuck/stop?force=true")
    finally:
        if forced is None:  # the forced stop failed: end the waiting one, or it waits the stop timeout
            for pid in [*descendants(vm["pid"]), vm["pid"]]:
                os.kill(pid, signal.SIGKILL)
        waiting.join()
    assert forced.status == 200 and forced.json()["status"] == "stopped"
    assert graceful[0].status == 200 and graceful[0].json()["status"] == "stopped"
    assert stop_event(api, "stuck").payload["data"]["exit_status"] == -signal.SIGKILL


def test_a_stop_without_force_powers_a_starting_vm_off_gracefully(api: RunningDaemon, tmp_path: Path) -> None:
    vm = create(api, tmp_path, "gentle", ready=False)
    stopped = api.request("POST", "/api/v1/vms/gentle/stop").json()
    assert stopped["status"] == "stopped" and stopped["status_reason"] is None
    assert stop_event(api, "gentle").payload["data"]["exit_status"] != -signal.SIGKILL
    assert SHUTDOWN_LINE in kestrel_log(vm)


def test_force_delete_removes_a_starting_vm_at_once(api: RunningDaemon, tmp_path: Path) -> None:
    create(api, tmp_path, "hasty", ready=False)
    assert api.request("DELETE", "/api/v1/vms/hasty?force=true").status == 204
    assert api.request("GET", "/api/v1/vms/hasty").status == 404
    assert stop_event(api, "hasty").payload["data"]["exit_status"] == -signal.SIGKILL


def test_a_delete_without_force_of_a_starting_vm_powers_it_off_first(
    api: RunningDaemon, tmp_path: Path
) -> None:
    create(api, tmp_path, "patient", ready=False)
    assert api.request("DELETE", "/api/v1/vms/patient").status == 204
    assert api.request("GET", "/api/v1/vms/patient").status == 404
    assert stop_event(api, "patient").payload["data"]["exit_status"] != -signal.SIGKILL


def test_a_force_value_that_is_no_boolean_is_refused_naming_it(api: RunningDaemon, tmp_path: Path) -> None:
    create(api, tmp_path, "kept", ready=True)
    for method, path in (
        ("POST", "/api/v1/vms/kept/stop?force=now"),
        ("DELETE", "/api/v1/vms/kept?force=now"),
    ):
        refused = api.request(method, path)
        assert refused.status == 422 and refused.json()["error"]["details"][0]["field"] == "force"
    assert api.request("GET", "/api/v1/vms/kept").json()["status"] == "running"


def test_volar_stop_and_delete_take_force(api: RunningDaemon, tmp_path: Path) -> None:
    create(api, tmp_path, "cli-stop", ready=False)
    create(api, tmp_path, "cli-delete", ready=False)
    stopped = run_volar(api.url, "vms", "stop", "--force", "cli-stop", "-o", "json")
    assert stopped.returncode == 0, stopped.stderr
    assert stop_event(api, "cli-stop").payload["data"]["exit_status"] == -signal.SIGKILL
    deleted = run_volar(api.url, "vms", "delete", "--force", "cli-delete")
    assert deleted.returncode == 0 and "vm cli-delete deleted" in deleted.stdout, deleted.stderr
    assert stop_event(api, "cli-delete").payload["data"]["exit_status"] == -signal.SIGKILL


def test_refusals_while_starting_say_to_wait_or_force_not_to_start_it(
    api: RunningDaemon, tmp_path: Path
) -> None:
    create(api, tmp_path, "booting", ready=False)
    for method, path in (
        ("GET", "/api/v1/vms/booting/agent/v1/health"),
        ("POST", "/api/v1/vms/booting/start"),
    ):
        refused = api.request(method, path)
        message = refused.json()["error"]["message"]
        assert refused.status == 409 and "is starting" in message, message
        assert "wait for it to finish starting" in message and "volar vms stop --force booting" in message
        assert "start it with" not in message
    # The console is offered while the VM starts: this backend just has none.
    console = run_volar(api.url, "vms", "console", "booting")
    assert console.returncode != 0 and "has no serial console" in console.stderr, console.stderr

    api.request("POST", "/api/v1/vms/booting/stop?force=true")
    stopped = api.request("GET", "/api/v1/vms/booting/agent/v1/health").json()["error"]["message"]
    assert "start it with `volar vms start booting`" in stopped
