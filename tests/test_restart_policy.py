"""Restart policy ``on-failure``: a crashed VM boots again by itself, up to ``max_restarts`` times."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

from volant_core.testing.hostvm import host_process_daemon
from volant_core.testing.waiting import eventually


def _vm(api: Any, name: str) -> dict[str, Any]:
    return api.request("GET", f"/api/v1/vms/{name}").json()


def test_on_failure_restarts_until_the_limit(host_manifest: dict[str, Any]) -> None:
    with host_process_daemon() as api:
        api.request("POST", "/api/v1/plugins", host_manifest)
        policy = {"mode": "on-failure", "max_restarts": 1, "backoff_s": 0.2}
        body = {"name": "phoenix", "plugin": "hello-host", "config": {"restart_policy": policy}}
        assert api.request("POST", "/api/v1/vms", body).status == 201
        # "witness" restarts after 0.8 s: twice what a second restart of "phoenix" would wait.
        witness_policy = {"mode": "on-failure", "backoff_s": 0.8}
        witness = {"name": "witness", "plugin": "hello-host", "config": {"restart_policy": witness_policy}}
        assert api.request("POST", "/api/v1/vms", witness).status == 201
        first = api.wait_for_status("phoenix", {"running"}, timeout=30)

        os.kill(first["pid"], signal.SIGKILL)
        again = eventually(
            lambda: (vm := _vm(api, "phoenix"))["status"] == "running" and vm["pid"] != first["pid"] and vm,
            "phoenix restarted",
        )
        types = [e.type for e in api.daemon.store.events.since(0) if e.vm_name == "phoenix"]
        assert types[-3:] == ["VM_CRASHED", "VM_STARTING", "VM_RUNNING"]

        # The one allowed restart is used up: the next crash stays a crash.
        os.kill(again["pid"], signal.SIGKILL)
        crashed = api.wait_for_status("phoenix", {"crashed"}, timeout=10)
        assert crashed["pid"] is None
        # "witness", killed after that crash, is back: a second restart of "phoenix" was due before.
        witnessed = api.wait_for_status("witness", {"running"}, timeout=30)
        os.kill(witnessed["pid"], signal.SIGKILL)
        eventually(
            lambda: (vm := _vm(api, "witness"))["status"] == "running" and vm["pid"] != witnessed["pid"],
            "witness restarted",
        )
        assert _vm(api, "phoenix")["status"] == "crashed"
        types = [e.type for e in api.daemon.store.events.since(0) if e.vm_name == "phoenix"]
        assert types[-1] == "VM_CRASHED" and types.count("VM_STARTING") == 2


def test_never_is_the_default_and_leaves_a_crashed_vm_down(host_manifest: dict[str, Any]) -> None:
    with host_process_daemon() as api:
        api.request("POST", "/api/v1/plugins", host_manifest)
        # "once" sets only the backoff (its mode is the default); "phoenix" restarts after the same wait.
        once = {"name": "once", "plugin": "hello-host", "config": {"restart_policy": {"backoff_s": 0.2}}}
        policy = {"mode": "on-failure", "backoff_s": 0.2}
        phoenix = {"name": "phoenix", "plugin": "hello-host", "config": {"restart_policy": policy}}
        assert api.request("POST", "/api/v1/vms", once).status == 201
        assert api.request("POST", "/api/v1/vms", phoenix).status == 201
        config = api.request("GET", "/api/v1/vms/once/config").json()["config"]
        assert config["restart_policy"]["mode"] == "never"

        vm = api.wait_for_status("once", {"running"}, timeout=30)
        os.kill(vm["pid"], signal.SIGKILL)
        api.wait_for_status("once", {"crashed"}, timeout=10)
        # A VM that crashed later with the same backoff is back: a restart of "once" was due before.
        first = api.wait_for_status("phoenix", {"running"}, timeout=30)
        os.kill(first["pid"], signal.SIGKILL)
        eventually(
            lambda: (vm := _vm(api, "phoenix"))["status"] == "running" and vm["pid"] != first["pid"],
            "phoenix restarted",
        )
        assert _vm(api, "once")["status"] == "crashed"
        types = [e.type for e in api.daemon.store.events.since(0) if e.vm_name == "once"]
        assert types.count("VM_STARTING") == 1 and types[-1] == "VM_CRASHED"


def test_a_restart_due_after_the_daemon_stopped_never_runs(
    host_manifest: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopping volantd cancels the automatic restarts still to come: none boots against the closed
    store after it (an embedded daemon's process goes on; volantd's own would exit anyway).
    """
    failed: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", failed.append)
    backoff = 1.0
    with host_process_daemon() as api:
        api.request("POST", "/api/v1/plugins", host_manifest)
        policy = {"mode": "on-failure", "backoff_s": backoff}
        body = {"name": "phoenix", "plugin": "hello-host", "config": {"restart_policy": policy}}
        assert api.request("POST", "/api/v1/vms", body).status == 201
        vm = api.wait_for_status("phoenix", {"running"}, timeout=30)
        os.kill(vm["pid"], signal.SIGKILL)
        api.wait_for_status("phoenix", {"crashed"}, timeout=10)
    time.sleep(backoff * 2)  # past the restart's due time: a wait, not a timing assertion
    assert [f"{args.exc_type.__name__}: {args.exc_value}" for args in failed] == []
