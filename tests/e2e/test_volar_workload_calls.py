"""``volar vms operations`` and ``volar vms call`` against a real guest running examples/hello-http,
and ``volar image build`` reusing the guest image the tests boot.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from volant_core.guest import GuestArtifacts
from volant_core.testing.cli import VOLAR, run_volar
from volant_core.testing.daemon import RunningDaemon

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api(hello_web: RunningDaemon) -> RunningDaemon:
    """The module's daemon with its running guest ``web`` (tests/e2e/conftest.py)."""
    return hello_web


def volar(api: RunningDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    """Run volar against the module's daemon."""
    return run_volar(api.url, *args, timeout=300)


def reply(result: subprocess.CompletedProcess[str]) -> tuple[str, Any]:
    """``HTTP <status>`` and the JSON body printed by ``volar vms call``."""
    status, _, body = result.stdout.partition("\n")
    return status, json.loads(body)


def test_operations_table_and_json(api: RunningDaemon) -> None:
    table = volar(api, "vms", "operations", "web")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["OPERATION", "ID", "METHOD", "PATH", "SUMMARY"]
    assert [line.split()[:3] for line in lines[1:]] == [["echo", "POST", "/echo"], ["hello", "GET", "/"]]
    rows = json.loads(volar(api, "vms", "operations", "web", "-o", "json").stdout)
    assert [(r["operation_id"], r["method"], r["path"]) for r in rows] == [
        ("echo", "POST", "/echo"),
        ("hello", "GET", "/"),
    ]


def test_call_by_operation_id_reaches_the_workload(api: RunningDaemon, tmp_path: Path) -> None:
    hello = volar(api, "vms", "call", "web", "HELLO", "--query", "who=me")
    assert hello.returncode == 0, hello.stderr
    status, body = reply(hello)
    assert status == "HTTP 200" and body["path"] == "/?who=me"
    assert '\n  "path"' in hello.stdout, "JSON is pretty-printed"

    echoed = volar(api, "vms", "call", "web", "echo", "--body", '{"x": 1}')
    assert reply(echoed) == ("HTTP 200", {"echo": {"x": 1}, "path": "/echo"})
    body_file = tmp_path / "body.json"
    body_file.write_text('{"from": "file"}')
    from_file = volar(api, "vms", "call", "web", "POST:/echo", "--body-file", str(body_file))
    assert reply(from_file) == ("HTTP 200", {"echo": {"from": "file"}, "path": "/echo"})


def test_call_errors(api: RunningDaemon) -> None:
    unknown = volar(api, "vms", "call", "web", "nope")
    assert unknown.returncode == 2 and "known: echo, hello" in unknown.stderr
    stray = volar(api, "vms", "call", "web", "hello", "--param", "id=1")
    assert stray.returncode == 2 and "--param" in stray.stderr
    broken = volar(api, "vms", "call", "web", "echo", "--body", "not json")
    assert broken.returncode == 1 and broken.stdout.startswith("HTTP 5"), broken.stdout
    missing = volar(api, "vms", "operations", "ghost")
    assert missing.returncode == 3


def test_image_build_reuses_the_cached_guest(volant_guest: GuestArtifacts) -> None:
    cache = volant_guest.kernel.parent.parent
    built = subprocess.run(
        [str(VOLAR), "image", "build", "--cache-dir", str(cache)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert built.stdout.split() == [
        "kernel",
        str(volant_guest.kernel),
        "initramfs",
        str(volant_guest.initramfs),
    ]
