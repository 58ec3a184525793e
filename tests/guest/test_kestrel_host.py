"""kestrel as an ordinary process on a UNIX socket, with a real workload.

The agent package is copied under another name and run by the guest's interpreter (Debian's
python3.11, nothing installed): this also proves it needs only the standard library and
relative imports.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from guest_http import AgentConnection, wait_for_socket

import volant_core.agent
from volant_core.guest.python_runtime import PYTHON

WORKLOAD_APP = Path(__file__).with_name("workload_app.py")
START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class HostKestrel:
    """A running kestrel: its process, socket, log and the workload's ready marker."""

    process: subprocess.Popen[bytes]
    socket_path: Path
    log: Path
    ready_file: Path

    def connect(self) -> AgentConnection:
        """A new connection once the socket accepts."""
        wait_for_socket(str(self.socket_path), START_TIMEOUT, alive=lambda: self.process.poll() is None)
        return AgentConnection(str(self.socket_path), timeout=START_TIMEOUT)


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
def start_kestrel(tmp_path: Path) -> Iterator[Callable[[dict[str, Any] | None], HostKestrel]]:
    """Start kestrel on a manifest (None: no manifest file); everything is stopped and reaped after."""
    if not PYTHON.exists():
        pytest.skip(f"{PYTHON} (the guest interpreter) is not installed")
    package_root = tmp_path / "pkg"
    shutil.copytree(Path(volant_core.agent.__file__).parent, package_root / "kestrel_copy")
    sockets = tempfile.TemporaryDirectory(prefix="kestrel-")
    running: list[HostKestrel] = []

    def start(manifest: dict[str, Any] | None) -> HostKestrel:
        manifest_file = tmp_path / "manifest.json"
        if manifest is not None:
            manifest_file.write_text(json.dumps(manifest))
        socket_path = Path(sockets.name) / "agent.sock"
        log = tmp_path / "kestrel.log"
        argv = [str(PYTHON), "-m", "kestrel_copy", "--listen-unix", str(socket_path)]
        argv += ["--manifest-file", str(manifest_file)]
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(package_root)}
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        running.append(HostKestrel(process, socket_path, log, tmp_path / "ready"))
        return running[-1]

    try:
        yield start
    finally:
        for kestrel in running:
            if kestrel.process.poll() is None:
                kestrel.process.send_signal(signal.SIGTERM)
                try:
                    kestrel.process.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(kestrel.process.pid, signal.SIGKILL)
                    kestrel.process.wait(10)
        sockets.cleanup()


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_health_is_gated_on_the_workload_health_check(start_kestrel: Callable[..., HostKestrel]) -> None:
    ready_file = Path(tempfile.mkdtemp()) / "ready"
    kestrel = start_kestrel(
        http_workload(free_port(), ready_file, {"endpoint": "/healthz", "timeout_ms": 30000})
    )
    agent = kestrel.connect()
    starting = agent.request("GET", "/v1/health")
    assert starting.status == 503
    body = starting.json()
    assert body["status"] == "starting" and isinstance(body["workload_pid"], int) and body["uptime_s"] >= 0
    ready_file.touch()
    assert agent.wait_health("ok", START_TIMEOUT)["workload_pid"] == body["workload_pid"]
    assert agent.request("GET", "/v1/health").status == 200
    assert "kestrel: workload healthy" in kestrel.log.read_text()


def test_manifest_is_returned_as_received(start_kestrel: Callable[..., HostKestrel], tmp_path: Path) -> None:
    manifest = http_workload(free_port(), tmp_path / "ready", None)
    manifest["labels"] = {"ünïcode": "✓", "nested": {"list": [1, 2.5, None, True]}}
    agent = start_kestrel(manifest).connect()
    reply = agent.request("GET", "/v1/manifest")
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    assert reply.json() == manifest


def test_proxy_forwards_method_path_query_headers_and_body(
    start_kestrel: Callable[..., HostKestrel], tmp_path: Path
) -> None:
    (tmp_path / "ready").touch()
    manifest = http_workload(free_port(), tmp_path / "ready", {"endpoint": "/healthz"})
    agent = start_kestrel(manifest).connect()
    agent.wait_health("ok", START_TIMEOUT)
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


def test_logs_keep_workload_output(start_kestrel: Callable[..., HostKestrel], tmp_path: Path) -> None:
    port = free_port()
    agent = start_kestrel(http_workload(port, tmp_path / "ready", None)).connect()
    deadline = time.monotonic() + START_TIMEOUT
    while f"workload listening on {port}" not in agent.request("GET", "/v1/logs").json()["lines"]:
        assert time.monotonic() < deadline, "the workload's output never reached /v1/logs"
        time.sleep(0.05)
    assert len(agent.request("GET", "/v1/logs?tail=1").json()["lines"]) == 1


def test_upstream_failure_is_502(start_kestrel: Callable[..., HostKestrel]) -> None:
    manifest = {
        "workload": {
            "base_url": f"http://127.0.0.1:{free_port()}",
            "entrypoint": [sys.executable, "-c", "import time; time.sleep(3600)"],
        }
    }
    agent = start_kestrel(manifest).connect()
    agent.wait_health("ok", START_TIMEOUT)
    reply = agent.request("GET", "/v1/anything")
    assert reply.status == 502
    assert reply.json()["error"]["code"] == "upstream_error"


def test_errors_are_json(start_kestrel: Callable[..., HostKestrel], tmp_path: Path) -> None:
    agent = start_kestrel(http_workload(free_port(), tmp_path / "ready", None)).connect()
    assert agent.request("GET", "/elsewhere").json()["error"]["code"] == "not_found"
    wrong = agent.request("POST", "/v1/health")
    assert wrong.status == 405 and set(wrong.json()["error"]) == {"code", "message"}


def test_health_check_timeout_is_unhealthy(start_kestrel: Callable[..., HostKestrel], tmp_path: Path) -> None:
    manifest = http_workload(free_port(), tmp_path / "never", {"endpoint": "/healthz", "timeout_ms": 300})
    body = start_kestrel(manifest).connect().wait_health("unhealthy", START_TIMEOUT)
    assert "did not pass within 300 ms" in body["reason"]


def test_workload_exit_is_unhealthy(start_kestrel: Callable[..., HostKestrel]) -> None:
    manifest = {"workload": {"entrypoint": [sys.executable, "-c", "raise SystemExit(3)"]}}
    body = start_kestrel(manifest).connect().wait_health("unhealthy", START_TIMEOUT)
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
    start_kestrel: Callable[..., HostKestrel], manifest: dict[str, Any] | None, reason: str
) -> None:
    kestrel = start_kestrel(manifest)
    agent = kestrel.connect()
    body = agent.wait_health("error", START_TIMEOUT)
    assert reason in body["reason"]
    assert agent.request("GET", "/v1/health").status == 503
    assert kestrel.process.poll() is None


def test_shutdown_stops_the_workload_and_exits(
    start_kestrel: Callable[..., HostKestrel], tmp_path: Path
) -> None:
    (tmp_path / "ready").touch()
    kestrel = start_kestrel(http_workload(free_port(), tmp_path / "ready", {"endpoint": "/healthz"}))
    agent = kestrel.connect()
    pid = agent.wait_health("ok", START_TIMEOUT)["workload_pid"]
    reply = agent.request("POST", "/v1/shutdown")
    assert reply.status == 202
    assert kestrel.process.wait(START_TIMEOUT) == 0
    assert not pid_alive(pid)
    assert not kestrel.socket_path.exists()
