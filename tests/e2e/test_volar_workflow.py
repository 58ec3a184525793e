"""The demo's workflow with the real `volar` executable against a live volantd."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.processes import processes_mentioning

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
VOLAR = Path(sys.executable).with_name("volar")


def volar(api: RunningDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    """Run volar against the test daemon."""
    return subprocess.run(
        [str(VOLAR), "--api", api.url, *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_install_create_call_delete_with_volar(volantd_with_guest: RunningDaemon) -> None:
    api = volantd_with_guest
    manifest = REPO / "examples" / "hello-http" / "manifest.json"
    installed = volar(api, "plugins", "install", str(manifest))
    assert installed.returncode == 0, installed.stderr
    assert "installed hello-http 0.1.0" in installed.stdout

    created = volar(api, "vms", "create", "demo", "--plugin", "hello-http", "-o", "json")
    assert created.returncode == 0, created.stderr
    vm = json.loads(created.stdout)
    assert vm["status"] == "running" and vm["pid"]

    table = volar(api, "vms", "list")
    assert table.returncode == 0
    header, row = table.stdout.splitlines()[:2]
    assert header.split()[:2] == ["NAME", "STATUS"] and row.split()[:2] == ["demo", "running"]

    answer = volar(api, "vms", "agent", "demo", "/v1/")
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["message"] == "hello from a Volant microVM"

    deleted = volar(api, "vms", "delete", "demo")
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    assert processes_mentioning(vm["runtime_dir"]) == []

    missing = volar(api, "vms", "get", "demo")
    assert missing.returncode == 3
    assert missing.stderr.strip().splitlines() == ["Error: vm 'demo' not found (HTTP 404)"]
