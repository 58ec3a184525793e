"""kestrel as an ordinary process on a UNIX socket, with a real workload.

The agent package is copied under another name and run by the guest's interpreter (Debian's
python3.11, nothing installed): this also proves it needs only the standard library and
relative imports.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import volant_core.agent
from volant_core.agent_client import AgentClient
from volant_core.guest.python_runtime import PYTHON
from volant_core.testing.kestrel import KestrelHost
from volant_core.testing.processes import IDLE_PROGRAM, cpu_used_over, pid_alive, signal_burst
from volant_core.testing.pytest_plugin import require_tool
from volant_core.testing.waiting import eventually, free_port

WORKLOAD_APP = Path(__file__).with_name("workload_app.py")
START_TIMEOUT = 30.0
StartKestrel = Callable[[dict[str, Any] | None], KestrelHost]


def connect(kestrel: KestrelHost) -> AgentClient:
    """A client for ``kestrel`` once its socket accepts."""
    kestrel.wait_listening(START_TIMEOUT)
    return AgentClient(kestrel.channel)


def wait_health(agent: AgentClient, wanted: str, timeout: float) -> dict[str, Any]:
    """Poll ``/v1/health`` until its status is ``wanted``; that body, or AssertionError."""
    return eventually(
        lambda: (body := agent.get("/v1/health").json())["status"] == wanted and body,
        f"/v1/health with status {wanted!r}",
        timeout,
    )


def http_workload(port: int, ready_file: Path, health: dict[str, Any] | None) -> dict[str, Any]:
    """A manifest running ``workload_app.py`` on ``port``."""
    manifest: dict[str, Any] = {
        "name": "echo",
        "workload": {
            "type": "http",
            "base_url": f"http://127.0.0.1:{port}/",
            "entrypoint": [sys.executable, "-u", str(WORKLOAD_APP), str(port), str(ready_file)],
            "env": {"GREETING": "hällo"},
        },
    }
    if health is not None:
        manifest["health_check"] = health
    return manifest


@pytest.fixture
def start_kestrel(volant_kestrel: Callable[..., KestrelHost], tmp_path: Path) -> StartKestrel:
    """Start the copied kestrel on a manifest (None: no manifest file), under the guest's interpreter."""
    require_tool(str(PYTHON), "python3.11")  # the guest's interpreter
    package_root = tmp_path / "pkg"
    shutil.copytree(Path(volant_core.agent.__file__).parent, package_root / "kestrel_copy")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(package_root)}

    def start(manifest: dict[str, Any] | None) -> KestrelHost:
        return volant_kestrel(manifest, python=PYTHON, module="kestrel_copy", env=env)

    return start


def test_health_is_gated_on_the_workload_health_check(start_kestrel: StartKestrel, tmp_path: Path) -> None:
    ready_file = tmp_path / "ready"
    kestrel = start_kestrel(
        http_workload(free_port(), ready_file, {"endpoint": "/healthz", "timeout_ms": 30000})
    )
    agent = connect(kestrel)
    starting = agent.get("/v1/health")
    assert starting.status == 503
    body = starting.json()
    assert body["status"] == "starting" and isinstance(body["workload_pid"], int) and body["uptime_s"] >= 0
    ready_file.touch()
    assert wait_health(agent, "ok", START_TIMEOUT)["workload_pid"] == body["workload_pid"]
    assert agent.get("/v1/health").status == 200
    assert "kestrel: workload healthy" in kestrel.log.read_text()


def test_manifest_is_returned_as_received(start_kestrel: StartKestrel, tmp_path: Path) -> None:
    manifest = http_workload(free_port(), tmp_path / "ready", None)
    manifest["labels"] = {"ünïcode": "✓", "nested": {"list": [1, 2.5, None, True]}}
    agent = connect(start_kestrel(manifest))
    reply = agent.get("/v1/manifest")
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    assert reply.json() == manifest


def test_proxy_forwards_method_path_query_headers_and_body(
    start_kestrel: StartKestrel, tmp_path: Path
) -> None:
    (tmp_path / "ready").touch()
    manifest = http_workload(free_port(), tmp_path / "ready", {"endpoint": "/healthz"})
    agent = connect(start_kestrel(manifest))
    wait_health(agent, "ok", START_TIMEOUT)
    reply = agent.request("POST", "/v1/echo/a%20b?x=1&y=two", body=b'{"k": "v"}', headers={"X-Test": "42"})
    assert reply.status == 200 and reply.headers["x-workload"] == "yes"
    echo = reply.json()
    assert (echo["method"], echo["path"], echo["query"], echo["body"]) == (
        "POST",
        "/echo/a%20b",
        "x=1&y=two",
        '{"k": "v"}',
    )
    assert echo["headers"]["x-test"] == "42"
    created = agent.request("PUT", "/v1/created")
    assert created.status == 201 and created.json()["method"] == "PUT"
    assert agent.request("DELETE", "/v1/thing").json()["method"] == "DELETE"


def test_logs_keep_workload_output(start_kestrel: StartKestrel, tmp_path: Path) -> None:
    port = free_port()
    agent = connect(start_kestrel(http_workload(port, tmp_path / "ready", None)))
    eventually(
        lambda: f"workload listening on {port}" in agent.get("/v1/logs").json()["lines"],
        "the workload's output in /v1/logs",
        START_TIMEOUT,
    )
    assert len(agent.get("/v1/logs?tail=1").json()["lines"]) == 1


def test_upstream_failure_is_502(start_kestrel: StartKestrel) -> None:
    manifest = {
        "workload": {
            "base_url": f"http://127.0.0.1:{free_port()}",
            "entrypoint": [sys.executable, "-c", IDLE_PROGRAM],
        }
    }
    agent = connect(start_kestrel(manifest))
    wait_health(agent, "ok", START_TIMEOUT)
    reply = agent.get("/v1/anything")
    assert reply.status == 502
    assert reply.json()["error"]["code"] == "upstream_error"


def test_errors_are_json(start_kestrel: StartKestrel, tmp_path: Path) -> None:
    agent = connect(start_kestrel(http_workload(free_port(), tmp_path / "ready", None)))
    assert agent.get("/elsewhere").json()["error"]["code"] == "not_found"
    wrong = agent.request("POST", "/v1/health")
    assert wrong.status == 405 and set(wrong.json()["error"]) == {"code", "message"}


def test_health_check_timeout_is_unhealthy_until_the_check_passes(
    start_kestrel: StartKestrel, tmp_path: Path
) -> None:
    ready_file = tmp_path / "late"
    manifest = http_workload(free_port(), ready_file, {"endpoint": "/healthz", "timeout_ms": 300})
    agent = connect(start_kestrel(manifest))
    body = wait_health(agent, "unhealthy", START_TIMEOUT)
    assert "did not pass within 300 ms" in body["reason"]
    ready_file.touch()  # a slow start: the check passes after its timeout
    assert wait_health(agent, "ok", START_TIMEOUT)["workload_pid"] == body["workload_pid"]


def test_workload_exit_is_unhealthy(start_kestrel: StartKestrel) -> None:
    manifest = {"workload": {"entrypoint": [sys.executable, "-c", "raise SystemExit(3)"]}}
    body = wait_health(connect(start_kestrel(manifest)), "unhealthy", START_TIMEOUT)
    assert body["reason"] == "workload exited with status 3"


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (None, "no volant.manifest="),
        ({"workload": {"entrypoint": ["/nonexistent/binary"]}}, "cannot start"),
        (
            {"workload": {"entrypoint": ["/bin/true"]}, "health_check": {"endpoint": "/h"}},
            "no workload.base_url",
        ),
    ],
)
def test_manifest_or_start_errors_are_reported(
    start_kestrel: StartKestrel, manifest: dict[str, Any] | None, reason: str
) -> None:
    kestrel = start_kestrel(manifest)
    agent = connect(kestrel)
    body = wait_health(agent, "error", START_TIMEOUT)
    assert reason in body["reason"]
    assert agent.get("/v1/health").status == 503
    assert kestrel.process.poll() is None


def test_shutdown_stops_the_workload_and_exits(start_kestrel: StartKestrel, tmp_path: Path) -> None:
    (tmp_path / "ready").touch()
    kestrel = start_kestrel(http_workload(free_port(), tmp_path / "ready", {"endpoint": "/healthz"}))
    agent = connect(kestrel)
    pid = wait_health(agent, "ok", START_TIMEOUT)["workload_pid"]
    reply = agent.request("POST", "/v1/shutdown")
    assert reply.status == 202
    assert kestrel.process.wait(START_TIMEOUT) == 0
    assert not pid_alive(pid)
    assert not kestrel.socket_path.exists()


def test_bursts_of_signals_do_not_hang_the_shutdown(start_kestrel: StartKestrel, tmp_path: Path) -> None:
    """SIGCHLD, then SIGTERM, in bursts: a handler that runs while another is still running must not
    deadlock kestrel. The SIGTERMs come in bursts for real: a parent-death signal is sent again each
    time one of the dying parent's threads exits (the stand-in VMM's, killed with SIGKILL).
    """
    (tmp_path / "ready").touch()
    kestrel = start_kestrel(http_workload(free_port(), tmp_path / "ready", {"endpoint": "/healthz"}))
    agent = connect(kestrel)
    pid = wait_health(agent, "ok", START_TIMEOUT)["workload_pid"]
    for sig in (signal.SIGCHLD, signal.SIGTERM):
        signal_burst(kestrel.process.pid, sig)
    # A SIGTERM landing after kestrel's shutdown, once Python restored the default handlers, ends it.
    assert kestrel.process.wait(START_TIMEOUT) in (0, -signal.SIGTERM)
    assert "kestrel: shutting down" in kestrel.log.read_text()
    eventually(lambda: not pid_alive(pid), "the workload ends")


def test_sigchld_with_no_child_leaves_it_idle(start_kestrel: StartKestrel) -> None:
    """Woken by SIGCHLD while kestrel has no child (no manifest: no workload), the reaper sleeps again."""
    kestrel = start_kestrel(None)
    connect(kestrel)
    signal_burst(kestrel.process.pid, signal.SIGCHLD)
    assert cpu_used_over(kestrel.process.pid, 1.0) < 0.5, "kestrel spins after SIGCHLD"
