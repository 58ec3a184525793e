"""volar's deployment, config and doctor commands, run as the real executable against a live daemon."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from volant_core.errors import ValidationError
from volant_core.settings import load_settings
from volant_core.testing.cli import VOLAR, run_volar
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.waiting import eventually


@pytest.fixture
def api(host_api: RunningDaemon) -> RunningDaemon:
    """The shared host-process daemon (tests/conftest.py)."""
    return host_api


def volar(api: RunningDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    """Run volar against ``api``."""
    return run_volar(api.url, *args)


def test_deployment_commands(api: RunningDaemon) -> None:
    created = volar(
        api, "deployments", "create", "web", "--plugin", "hello-host", "--replicas", "2", "-o", "json"
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["replicas"] == 2

    def ready() -> bool:
        listed = volar(api, "deployments", "list", "-o", "json")
        return json.loads(listed.stdout)[0]["ready_replicas"] == 2

    eventually(ready, "2 ready members")
    table = volar(api, "deployments", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "DESIRED", "READY"] and table[1].split() == ["web", "2", "2"]

    scaled = volar(api, "deployments", "scale", "web", "1")
    assert scaled.returncode == 0 and scaled.stdout.startswith("web: 1 desired")
    eventually(
        lambda: (
            [m["name"] for m in api.request("GET", "/api/v1/deployments/web").json()["members"]] == ["web-1"]
        ),
        "scaled to 1",
    )
    members = json.loads(volar(api, "deployments", "get", "web", "-o", "json").stdout)["members"]
    assert [m["name"] for m in members] == ["web-1"]

    assert volar(api, "deployments", "delete", "web").returncode == 0
    missing = volar(api, "deployments", "get", "web")
    assert missing.returncode == 3 and "not found" in missing.stderr


def test_config_commands(api: RunningDaemon, tmp_path: Path) -> None:
    assert volar(api, "vms", "create", "cfg", "--plugin", "hello-host").returncode == 0
    assert json.loads(volar(api, "vms", "config", "get", "cfg").stdout)["version"] == 1

    patch = tmp_path / "patch.json"
    patch.write_text(json.dumps({"resources": {"memory_mb": 256}}))
    changed = volar(api, "vms", "config", "set", "cfg", "--file", str(patch))
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() == "cfg: configuration version 2 (restart the VM to apply it)"

    history = json.loads(volar(api, "vms", "config", "history", "cfg", "-o", "json").stdout)
    assert [h["version"] for h in history] == [2, 1]
    rolled = volar(api, "vms", "config", "rollback", "cfg", "1")
    assert rolled.stdout.strip() == "cfg: configuration version 3 (copy of version 1)"
    current = json.loads(volar(api, "vms", "config", "get", "cfg").stdout)
    assert current["config"]["resources"]["memory_mb"] == history[1]["config"]["resources"]["memory_mb"]

    patch.write_text(json.dumps({"plugin": "other"}))
    refused = volar(api, "vms", "config", "set", "cfg", "--file", str(patch))
    assert refused.returncode == 2 and "plugin" in refused.stderr


def test_doctor_reports_every_check() -> None:
    result = subprocess.run([str(VOLAR), "doctor", "-o", "json"], capture_output=True, text=True, timeout=60)
    rows = {row["check"]: row for row in json.loads(result.stdout)}
    assert {"state-dir", "guest-image-tools", "qemu-binary", "qemu-accelerator"} <= set(rows)
    assert all(row["status"] in {"pass", "warn", "fail"} for row in rows.values())
    assert result.returncode == (1 if any(r["status"] == "fail" for r in rows.values()) else 0)


def test_doctor_fails_what_is_missing(tmp_path: Path) -> None:
    """No QEMU and no image tools on PATH, a state directory that cannot be created: each is reported."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "VOLANT_QEMU_BINARY"}
    env |= {"PATH": str(empty), "VOLANT_STATE_DIR": str(blocker / "state")}
    result = subprocess.run(
        [str(VOLAR), "doctor", "-o", "json"], capture_output=True, text=True, env=env, timeout=60
    )
    statuses = {row["check"]: row["status"] for row in json.loads(result.stdout)}
    assert statuses["state-dir"] == "fail"
    assert statuses["qemu-binary"] == "fail"
    assert statuses["guest-image-tools"] == "warn"
    assert result.returncode == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: only a root volantd starts VMMs as another user")
def test_doctor_reports_the_vmm_confinement(tmp_path: Path) -> None:
    """The VMM user present: pass; missing: fail naming the setting and `volar setup`; ``root`` and
    ``VOLANT_VMM_CGROUP=off``: warnings with the setting to unset."""
    env = {**os.environ, "VOLANT_STATE_DIR": str(tmp_path / "state")}
    rows = {}
    for name, extra in (
        ("default", {}),
        ("missing", {"VOLANT_VMM_USER": "volant-no-such-user"}),
        ("root", {"VOLANT_VMM_USER": "root"}),
        ("off", {"VOLANT_VMM_CGROUP": "off"}),
    ):
        result = subprocess.run(
            [str(VOLAR), "doctor", "-o", "json"],
            capture_output=True,
            text=True,
            env={**env, **extra},
            timeout=60,
        )
        rows[name] = next(row for row in json.loads(result.stdout) if row["check"] == "vmm-confinement")
    assert rows["default"]["status"] == "pass" and "volant-vmm" in rows["default"]["detail"]
    assert rows["missing"]["status"] == "fail"
    assert "VOLANT_VMM_USER" in rows["missing"]["detail"] and "volar setup" in rows["missing"]["detail"]
    assert (rows["root"]["status"], rows["root"]["fix"]) == ("warn", "unset VOLANT_VMM_USER")
    assert (rows["off"]["status"], rows["off"]["fix"]) == ("warn", "unset VOLANT_VMM_CGROUP")


@pytest.mark.parametrize("value", ["2000000000", "5-3", "0-100", "2000000000-4294967295", "a-b"])
def test_a_vmm_id_range_that_is_not_a_range_of_unused_ids_is_refused(value: str, tmp_path: Path) -> None:
    """``VOLANT_VMM_ID_RANGE`` is FIRST-LAST, above the host's users' ids and below ``(uid_t)-1``."""
    with pytest.raises(ValidationError, match=r"VOLANT_VMM_ID_RANGE: .*must be FIRST-LAST"):
        load_settings({"VOLANT_VMM_ID_RANGE": value, "VOLANT_STATE_DIR": str(tmp_path)})


@pytest.mark.parametrize("value", ["../escape", "volant/../..", "a/./b", "has space"])
def test_a_vmm_cgroup_outside_its_hierarchy_is_refused_naming_the_setting(value: str, tmp_path: Path) -> None:
    """``VOLANT_VMM_CGROUP`` names a group below each hierarchy's root, never one above it."""
    with pytest.raises(ValidationError, match=r"VOLANT_VMM_CGROUP: .*must be off, or a cgroup path"):
        load_settings({"VOLANT_VMM_CGROUP": value, "VOLANT_STATE_DIR": str(tmp_path)})
