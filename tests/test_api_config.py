"""A VM's versioned configuration through the real HTTP API: GET, PATCH, history, rollback.

The tests marked e2e share one daemon and one booted guest (``cfg``) per
module; each works from the version it finds, so their order does not matter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core.guest import GuestArtifacts
from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.pytest_plugin import require_qemu

VM = "cfg"
CONFIG = f"/api/v1/vms/{VM}/config"
MANIFEST = Path(__file__).resolve().parents[1] / "examples" / "hello-http" / "manifest.json"


@pytest.fixture(scope="module")
def api(volant_guest: GuestArtifacts) -> Iterator[RunningDaemon]:
    """A daemon with the example runtime installed and VM ``cfg`` running."""
    require_qemu()
    with running_daemon(volant_guest) as daemon:
        assert daemon.request("POST", "/api/v1/plugins", json.loads(MANIFEST.read_text())).status == 201
        created = daemon.request("POST", "/api/v1/vms", {"name": VM, "plugin": "hello-http"})
        assert created.status == 201, created.body
        assert daemon.wait_for_status(VM, {"running", "crashed"})["status"] == "running"
        yield daemon


def _field(response: Any) -> str:
    return response.json()["error"]["details"][0]["field"]


def _version(api: RunningDaemon) -> int:
    return int(api.request("GET", CONFIG).json()["version"])


def _config_events(api: RunningDaemon) -> list[dict[str, Any]]:
    """``data`` of every VM_CONFIG_CHANGED event of ``cfg``, oldest first."""
    events = api.daemon.store.events.since(0)
    return [e.payload["data"] for e in events if e.type == "VM_CONFIG_CHANGED" and e.vm_name == VM]


def _patch(api: RunningDaemon, body: Any) -> dict[str, Any]:
    answer = api.request("PATCH", CONFIG, body)
    assert answer.status == 200, answer.body
    return dict(answer.json())


def _qemu_argv(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


# --------------------------------------------------------------------------
# Without a guest
# --------------------------------------------------------------------------


def test_a_new_manifest_needs_the_plugin_enabled_and_of_its_name(host_api: RunningDaemon) -> None:
    assert host_api.request("POST", "/api/v1/vms", {"name": "m", "plugin": "hello-host"}).status == 201
    path = "/api/v1/vms/m/config"
    manifest = host_api.request("GET", path).json()["config"]["manifest"]
    newer = {**manifest, "version": "9.9.9"}
    before = host_api.request("GET", f"{path}/history").json()
    assert host_api.request("POST", "/api/v1/plugins/hello-host/enabled", {"enabled": False}).status == 200
    disabled = host_api.request("PATCH", path, {"manifest": newer})
    assert disabled.status == 409, disabled.body
    assert "disabled" in disabled.json()["error"]["message"]
    # other keys stay patchable on a VM of a disabled plugin
    assert host_api.request("PATCH", path, {"metadata": {"team": "web"}}).status == 200
    assert host_api.request("POST", "/api/v1/plugins/hello-host/enabled", {"enabled": True}).status == 200
    renamed = host_api.request("PATCH", path, {"manifest": {**newer, "name": "other", "runtime": "other"}})
    assert renamed.status == 422, renamed.body
    assert _field(renamed) == "manifest.name"
    history = host_api.request("GET", f"{path}/history").json()
    assert len(history) == len(before) + 1 and history[0]["config"]["manifest"] == manifest
    assert (
        host_api.request("PATCH", path, {"manifest": newer}).json()["config"]["manifest"]["version"]
        == "9.9.9"
    )


def test_unknown_vm_is_404_on_every_config_route(volantd: RunningDaemon) -> None:
    for method, path, body in [
        ("GET", "/api/v1/vms/ghost/config", None),
        ("PATCH", "/api/v1/vms/ghost/config", {"kernel_cmdline": "quiet"}),
        ("GET", "/api/v1/vms/ghost/config/history", None),
        ("POST", "/api/v1/vms/ghost/config/rollback", {"version": 1}),
    ]:
        answer = volantd.request(method, path, body)
        assert answer.status == 404, (method, path, answer.body)
        assert answer.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a", "plugin": "hello-http", "config": {"plugin": "other"}}, "config.plugin"),
        ({"name": "a", "config": {"cpus": 2}}, "config.cpus"),
        (
            {"name": "a", "plugin": "hello-http", "config": {"resources": {"cpu_cores": 0}}},
            "config.resources.cpu_cores",
        ),
        ({"name": "a"}, "plugin"),
        ({"name": "a", "plugin": "hello-http", "config": {"runtime": "other"}}, "runtime"),
        ({"name": "a", "plugin": "hello-http", "network_mode": "no such mode"}, "network_mode"),
    ],
)
def test_create_refuses_a_bad_config_and_leaves_nothing(
    volantd: RunningDaemon, hello_manifest: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    assert volantd.request("POST", "/api/v1/plugins", hello_manifest).status == 201
    answer = volantd.request("POST", "/api/v1/vms", body)
    assert answer.status == 422, answer.body
    assert _field(answer) == field
    assert volantd.daemon.store.vms.list() == []


# --------------------------------------------------------------------------
# With the module's guest
# --------------------------------------------------------------------------


@pytest.mark.e2e
def test_config_of_a_new_vm(api: RunningDaemon) -> None:
    first = api.request("GET", f"{CONFIG}/history").json()[-1]
    assert first["version"] == 1
    config = first["config"]
    assert (config["plugin"], config["runtime"], config["hypervisor"]) == ("hello-http", "hello-http", "qemu")
    assert config["resources"] == {"cpu_cores": 1, "memory_mb": 384}
    assert config["network"] == {"mode": "none"}
    assert config["restart_policy"] == {"mode": "never", "max_restarts": 5, "backoff_s": 1.0}
    assert config["manifest"] == api.request("GET", "/api/v1/plugins/hello-http").json()
    current = api.request("GET", CONFIG).json()
    assert set(current) == {"version", "updated_at", "config"}
    assert api.request("GET", f"/api/v1/vms/{VM}").json()["config_version"] == current["version"]


@pytest.mark.e2e
def test_patch_applies_at_the_next_start(api: RunningDaemon) -> None:
    before = _version(api)
    events_before = len(_config_events(api))
    memory = 384 if api.request("GET", CONFIG).json()["config"]["resources"]["memory_mb"] != 384 else 448

    changed = _patch(api, {"resources": {"memory_mb": memory}})

    assert changed["version"] == before + 1
    assert changed["config"]["resources"] == {"cpu_cores": 1, "memory_mb": memory}
    assert api.request("GET", CONFIG).json() == changed
    vm = api.request("GET", f"/api/v1/vms/{VM}").json()
    assert vm["status"] == "running" and vm["memory_mb"] != memory
    assert (vm["config_version"], vm["restart_pending"]) == (before + 1, True)
    assert _config_events(api)[events_before:] == [
        {"pid": vm["pid"], "ip_address": None, "version": before + 1, "restart_pending": True}
    ]

    assert api.request("POST", f"/api/v1/vms/{VM}/restart").status == 200
    vm = api.wait_for_status(VM, {"running", "crashed"})
    assert vm["status"] == "running", vm
    assert (vm["memory_mb"], vm["config_version"], vm["restart_pending"]) == (memory, before + 1, False)
    argv = _qemu_argv(vm["pid"])
    assert argv[argv.index("-m") + 1] == str(memory)
    assert len(_config_events(api)) == events_before + 1


@pytest.mark.e2e
def test_changes_that_apply_at_once_need_no_restart(api: RunningDaemon) -> None:
    pending_before = api.request("GET", f"/api/v1/vms/{VM}").json()["restart_pending"]
    changed = _patch(api, {"metadata": {"owner": "tests"}, "restart_policy": {"max_restarts": 2}})
    assert changed["config"]["metadata"] == {"owner": "tests"}
    assert changed["config"]["restart_policy"]["max_restarts"] == 2
    assert api.request("GET", f"/api/v1/vms/{VM}").json()["restart_pending"] is pending_before


@pytest.mark.e2e
def test_history_is_newest_first_and_limited(api: RunningDaemon) -> None:
    _patch(api, {"metadata": {"step": 1}})
    _patch(api, {"metadata": {"step": 2}})
    current = _version(api)

    history = api.request("GET", f"{CONFIG}/history").json()
    assert [h["version"] for h in history] == list(range(current, 0, -1))
    assert history[0]["config"]["metadata"] == {"step": 2}
    assert history[1]["config"]["metadata"] == {"step": 1}
    limited = api.request("GET", f"{CONFIG}/history?limit=2").json()
    assert limited == history[:2]
    assert len(api.request("GET", f"{CONFIG}/history?limit=0").json()) == current
    for bad in ("-1", "two", "1.5"):
        answer = api.request("GET", f"{CONFIG}/history?limit={bad}")
        assert answer.status == 422 and _field(answer) == "limit", (bad, answer.body)


@pytest.mark.e2e
def test_rollback_stores_the_old_config_as_a_new_version(api: RunningDaemon) -> None:
    _patch(api, {"kernel_cmdline": "quiet"})
    current = _version(api)
    events_before = len(_config_events(api))

    answer = api.request("POST", f"{CONFIG}/rollback", {"version": 1})

    assert answer.status == 200, answer.body
    rolled = answer.json()
    first = api.request("GET", f"{CONFIG}/history").json()[-1]
    assert rolled["version"] == current + 1
    assert rolled["config"] == first["config"]
    assert api.request("GET", CONFIG).json() == rolled
    history = api.request("GET", f"{CONFIG}/history").json()
    assert [h["version"] for h in history] == list(range(current + 1, 0, -1))
    assert history[1]["config"]["kernel_cmdline"] == "quiet"
    events = _config_events(api)[events_before:]
    assert [(e["version"], e["restart_pending"]) for e in events] == [
        (current + 1, api.request("GET", f"/api/v1/vms/{VM}").json()["restart_pending"])
    ]


@pytest.mark.e2e
def test_bad_rollbacks_change_nothing(api: RunningDaemon) -> None:
    current = _version(api)
    events_before = len(_config_events(api))
    unknown = api.request("POST", f"{CONFIG}/rollback", {"version": 999})
    assert unknown.status == 404 and _field(unknown) == "version"
    for body in ({"version": 0}, {"version": "1"}, {}, {"version": 1, "force": True}):
        answer = api.request("POST", f"{CONFIG}/rollback", body)
        assert answer.status == 422, (body, answer.body)
        assert _field(answer) in {"version", "force"}
    assert _version(api) == current
    assert len(_config_events(api)) == events_before


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"plugin": "other"}, 422, "plugin"),
        ({"cpus": 2}, 422, "cpus"),
        ({"resources": {"cpu_cores": 0}}, 422, "resources.cpu_cores"),
        ({"resources": {"memory_mb": "512"}}, 422, "resources.memory_mb"),
        ({"runtime": "other"}, 422, "runtime"),
        ({"manifest": None}, 422, "manifest"),
        ({"expose": [{"port": 70000}]}, 422, "expose.0.port"),
        ({"restart_policy": {"mode": "always"}}, 422, "restart_policy.mode"),
        ({"hypervisor": "xen"}, 404, "hypervisor"),
        ({"network": {"mode": "nosuchmode"}}, 404, "network.mode"),
        (["not", "an", "object"], 422, "body"),
    ],
)
def test_invalid_patches_change_nothing(api: RunningDaemon, body: Any, status: int, field: str) -> None:
    current = api.request("GET", CONFIG).json()
    events_before = len(_config_events(api))
    answer = api.request("PATCH", CONFIG, body)
    assert answer.status == status, answer.body
    assert _field(answer) == field
    assert api.request("GET", CONFIG).json() == current
    assert len(_config_events(api)) == events_before


@pytest.mark.e2e
def test_patch_that_changes_nothing_stores_nothing(api: RunningDaemon) -> None:
    current = api.request("GET", CONFIG).json()
    events_before = len(_config_events(api))
    for body in ({}, {"plugin": "hello-http"}, {"resources": current["config"]["resources"]}):
        assert _patch(api, body) == current
    assert len(_config_events(api)) == events_before


@pytest.mark.e2e
def test_create_with_a_config_object(api: RunningDaemon) -> None:
    body = {
        "name": "cfg-create",
        "plugin": "hello-http",
        "memory_mb": 512,
        "kernel_cmdline": "quiet",
        "config": {"plugin": "hello-http", "resources": {"memory_mb": 256}, "metadata": {"from": "create"}},
    }
    try:
        created = api.request("POST", "/api/v1/vms", body)
        assert created.status == 201, created.body
        assert created.json()["memory_mb"] == 256
        config = api.request("GET", "/api/v1/vms/cfg-create/config").json()
        assert config["version"] == 1
        assert config["config"]["resources"] == {"cpu_cores": 1, "memory_mb": 256}
        assert config["config"]["kernel_cmdline"] == "quiet"
        assert config["config"]["metadata"] == {"from": "create"}
    finally:
        api.request("DELETE", "/api/v1/vms/cfg-create")


@pytest.mark.e2e
def test_stopped_vm_takes_patches_and_has_nothing_pending(api: RunningDaemon) -> None:
    assert api.request("POST", f"/api/v1/vms/{VM}/stop").json()["status"] == "stopped"
    try:
        changed = _patch(api, {"resources": {"cpu_cores": 2}})
        vm = api.request("GET", f"/api/v1/vms/{VM}").json()
        assert (vm["config_version"], vm["restart_pending"]) == (changed["version"], False)
        assert _config_events(api)[-1]["restart_pending"] is False
    finally:
        assert api.request("POST", f"/api/v1/vms/{VM}/start").status == 200
        vm = api.wait_for_status(VM, {"running", "crashed"})
    assert (vm["status"], vm["cpu_cores"], vm["restart_pending"]) == ("running", 2, False)
