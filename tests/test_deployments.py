"""Deployments reconciled by the loop, on the test-host-process backend (real kestrel processes)."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.processes import processes_mentioning
from volant_core.testing.waiting import eventually


@pytest.fixture
def api(host_api: RunningDaemon) -> RunningDaemon:
    """The shared host-process daemon (tests/conftest.py)."""
    return host_api


def members(api: RunningDaemon, name: str = "web") -> dict[str, dict[str, Any]]:
    """Member name -> VM resource."""
    deployment = api.request("GET", f"/api/v1/deployments/{name}").json()
    return {m["name"]: api.request("GET", f"/api/v1/vms/{m['name']}").json() for m in deployment["members"]}


def all_running(api: RunningDaemon, count: int, name: str = "web") -> dict[str, dict[str, Any]] | None:
    """The members when exactly ``count`` exist and all run, else None."""
    found = members(api, name)
    ok = len(found) == count and all(vm.get("status") == "running" for vm in found.values())
    return found if ok else None


def create(api: RunningDaemon, replicas: int, **config: Any) -> None:
    body = {"name": "web", "replicas": replicas, "config": {"plugin": "hello-host", **config}}
    created = api.request("POST", "/api/v1/deployments", body)
    assert created.status == 201, created.body
    assert created.json()["replicas"] == replicas


def test_three_replicas_self_heal_scale_down_and_roll_out(api: RunningDaemon) -> None:
    create(api, 3)
    first = eventually(lambda: all_running(api, 3), "3 running members")
    assert sorted(first) == ["web-1", "web-2", "web-3"]
    assert api.request("GET", "/api/v1/deployments/web").json()["ready_replicas"] == 3

    # A member's VMM dies: without any API call a replacement (web-4) runs, and web-2 goes.
    os.kill(first["web-2"]["pid"], signal.SIGKILL)
    healed = eventually(
        lambda: (found := all_running(api, 3)) and "web-2" not in found and found, "web-2 replaced"
    )
    assert sorted(healed) == ["web-1", "web-3", "web-4"]
    assert healed["web-1"]["pid"] == first["web-1"]["pid"]

    # Scale down: the highest indices go first.
    patched = api.request("PATCH", "/api/v1/deployments/web", {"replicas": 1})
    assert patched.status == 200 and patched.json()["replicas"] == 1
    eventually(lambda: list(members(api)) == ["web-1"], "scale down to web-1")
    removed = [
        e.payload["message"]
        for e in api.daemon.store.events.since(0)
        if e.type == "DEPLOYMENT_RECONCILED" and e.payload["message"].startswith("removed web")
    ]
    assert removed == ["removed web-4", "removed web-3"]

    # Scale up again and change the configuration: every member gets it, one at a time.
    api.request("PATCH", "/api/v1/deployments/web", {"replicas": 2})
    eventually(lambda: all_running(api, 2), "2 running members")
    api.request(
        "PATCH", "/api/v1/deployments/web", {"config": {"plugin": "hello-host", "kernel_cmdline": "rev=2"}}
    )
    rolled = eventually(
        lambda: (
            (found := all_running(api, 2)) and all(kernel_cmdline(api, n) == "rev=2" for n in found) and found
        ),
        "configuration rolled out",
    )
    assert sorted(rolled) == ["web-1", "web-2"]

    assert api.request("DELETE", "/api/v1/deployments/web").status == 204
    assert api.request("GET", "/api/v1/deployments/web").status == 404
    assert api.request("GET", "/api/v1/vms").json() == []
    assert processes_mentioning(str(api.daemon.settings.runtime_dir)) == []


def test_rolling_update_replaces_one_member_at_a_time(api: RunningDaemon) -> None:
    create(api, 3)
    eventually(lambda: all_running(api, 3), "3 running members")
    api.request(
        "PATCH", "/api/v1/deployments/web", {"config": {"plugin": "hello-host", "kernel_cmdline": "v=2"}}
    )
    eventually(
        lambda: (
            all(
                api.request("GET", f"/api/v1/vms/web-{i}/config")
                .json()
                .get("config", {})
                .get("kernel_cmdline")
                == "v=2"
                for i in (1, 2, 3)
            )
            and all_running(api, 3)
        ),
        "rolled out",
    )
    # Each replacement of the roll-out started while every member ran (replayed from the events).
    events = list(api.daemon.store.events.since(0))
    rollout = [i for i, e in enumerate(events) if "rolling out" in e.payload.get("message", "")]
    assert len(rollout) == 3
    for later in rollout[1:]:
        statuses: dict[str, str] = {}
        for event in events[:later]:
            if event.type == "VM_DELETED":
                statuses.pop(event.vm_name, None)
            elif event.type.startswith("VM_"):
                statuses[event.vm_name] = event.payload["status"]
        assert set(statuses.values()) == {"running"}, statuses


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": "Bad_Name", "config": {"plugin": "hello-host"}}, 422, "name"),
        ({"name": "web", "replicas": -1, "config": {"plugin": "hello-host"}}, 422, "replicas"),
        ({"name": "web", "config": {}}, 422, "config.plugin"),
        ({"name": "web", "config": {"plugin": "nope"}}, 404, "plugin"),
        (
            {"name": "web", "config": {"plugin": "hello-host", "resources": {"memory_mb": 1}}},
            422,
            "memory_mb",
        ),
        ({"name": "web", "config": {"plugin": "hello-host"}, "extra": 1}, 422, "extra"),
    ],
)
def test_bad_deployments_are_refused(api: RunningDaemon, body: dict, status: int, field: str) -> None:
    answer = api.request("POST", "/api/v1/deployments", body)
    assert answer.status == status, answer.body
    assert answer.json()["error"]["details"][0]["field"].endswith(field)
    assert api.request("GET", "/api/v1/deployments").json() == []
    assert api.daemon.store.vms.list() == []


def test_patch_and_delete_of_unknown_or_empty(api: RunningDaemon) -> None:
    assert api.request("PATCH", "/api/v1/deployments/ghost", {"replicas": 1}).status == 404
    assert api.request("DELETE", "/api/v1/deployments/ghost").status == 404
    create(api, 0)
    assert api.request("PATCH", "/api/v1/deployments/web", {}).status == 422


def kernel_cmdline(api: RunningDaemon, name: str) -> str | None:
    """The member's configured kernel command line; None while it is being replaced (no such VM)."""
    reply = api.request("GET", f"/api/v1/vms/{name}/config")
    return reply.json()["config"]["kernel_cmdline"] if reply.status == 200 else None
