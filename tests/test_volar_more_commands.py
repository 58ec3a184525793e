"""volar's VM, plugin, system, events and completion commands, run as the real executable against a
live daemon on the host-process backend (no guest image needed).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from volant_core.cli.output import cell
from volant_core.testing.cli import VOLAR, run_volar
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import host_process_daemon
from volant_core.testing.processes import default_sigint, kill_mentioning
from volant_core.testing.waiting import eventually, free_port


@pytest.fixture
def api(host_api: RunningDaemon) -> RunningDaemon:
    """The shared host-process daemon (tests/conftest.py)."""
    return host_api


def volar(api: RunningDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    """Run volar against ``api``; fail the test on a non-zero exit."""
    result = run_volar(api.url, *args)
    assert result.returncode == 0, f"volar {' '.join(args)}: {result.stderr}"
    return result


def spawn_volar(api: RunningDaemon, *args: str) -> subprocess.Popen[str]:
    """Start ``volar ARGS`` in the background (line-buffered text output), interruptible by SIGINT."""
    return subprocess.Popen(
        [str(VOLAR), "--api", api.url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        preexec_fn=default_sigint,
    )


def reap(process: subprocess.Popen[str]) -> None:
    """Kill ``process`` if it still runs and wait for it."""
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=30)


def test_vm_lifecycle_quiet_and_yaml(api: RunningDaemon) -> None:
    assert volar(api, "vms", "create", "q1", "--plugin", "hello-host", "-q").stdout == "q1\n"
    volar(api, "vms", "create", "q2", "--plugin", "hello-host", "--no-wait", "--quiet")
    assert volar(api, "vms", "list", "-q").stdout.split() == ["q1", "q2"]
    listed = yaml.safe_load(volar(api, "vms", "list", "-o", "yaml").stdout)
    assert [vm["name"] for vm in listed] == ["q1", "q2"]
    assert yaml.safe_load(volar(api, "vms", "get", "q1", "-o", "yaml").stdout)["status"] == "running"

    assert json.loads(volar(api, "vms", "stop", "q1", "-o", "json").stdout)["status"] == "stopped"
    assert json.loads(volar(api, "vms", "start", "q1", "-o", "json").stdout)["status"] in {
        "starting",
        "running",
    }
    api.wait_for_status("q1", {"running"})
    assert json.loads(volar(api, "vms", "restart", "q1", "-o", "json").stdout)["status"] in {
        "starting",
        "running",
    }
    assert volar(api, "vms", "delete", "q2").stdout.strip() == "vm q2 deleted"
    assert run_volar(api.url, "vms", "get", "q2").returncode == 3


def test_scale(api: RunningDaemon) -> None:
    volar(api, "vms", "create", "sc", "--plugin", "hello-host")
    pending = volar(api, "vms", "scale", "sc", "--cpu", "2", "--memory", "256")
    assert pending.stdout.strip() == "sc: configuration version 2 (restart the VM to apply it)"
    applied = volar(api, "vms", "scale", "sc", "--memory", "384", "--restart")
    assert applied.stdout.strip() == "sc: configuration version 3 (no restart pending)"
    api.wait_for_status("sc", {"running"})
    vm = json.loads(volar(api, "vms", "get", "sc", "-o", "json").stdout)
    assert (vm["cpu_cores"], vm["memory_mb"]) == (2, 384)
    nothing = run_volar(api.url, "vms", "scale", "sc")
    assert nothing.returncode == 2 and "--cpu" in nothing.stderr
    assert run_volar(api.url, "vms", "scale", "nope", "--cpu", "1").returncode == 3


def test_logs_tail_and_follow_until_the_vm_stops(api: RunningDaemon) -> None:
    volar(api, "vms", "create", "lg", "--plugin", "hello-host")
    whole = volar(api, "vms", "logs", "lg").stdout
    assert whole, "kestrel writes to the console log"
    assert volar(api, "vms", "logs", "lg", "--tail", "1").stdout == whole.splitlines(keepends=True)[-1]

    follower = spawn_volar(api, "vms", "logs", "lg", "--tail", "1", "-f")
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == whole.splitlines(keepends=True)[-1]
        assert follower.poll() is None, "following goes on while the VM runs"
        volar(api, "vms", "stop", "lg")
        assert follower.wait(timeout=30) == 0, "the stream ends when the VM stops"
    finally:
        reap(follower)


def test_events_follow_until_sigint(api: RunningDaemon) -> None:
    watcher = spawn_volar(api, "events", "-o", "json", "--name", "ev")
    try:
        eventually(lambda: api.daemon.orchestrator.events.subscriber_count == 1, "volar subscribed")
        volar(api, "vms", "create", "ev", "--plugin", "hello-host", "--no-wait")
        assert watcher.stdout is not None
        seen = []
        while not seen or seen[-1]["type"] != "VM_RUNNING":
            seen.append(json.loads(watcher.stdout.readline()))
        assert seen[0]["type"] == "VM_CREATED" and {e["name"] for e in seen} == {"ev"}
        ids = [e["id"] for e in seen]
        assert ids == sorted(ids)
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=30) == 0
    finally:
        reap(watcher)

    replay = spawn_volar(api, "events", "--since", str(ids[0] - 1), "--type", "VM_RUNNING")
    try:
        assert replay.stdout is not None
        line = replay.stdout.readline().split()
        assert line[:4] == [str(ids[-1]), "VM_RUNNING", "ev", "running"]
        replay.send_signal(signal.SIGINT)
        assert replay.wait(timeout=30) == 0
    finally:
        reap(replay)


def test_events_reconnect_with_last_event_id(host_manifest: dict[str, Any], tmp_path: Path) -> None:
    """volantd restarts mid-stream (same state, same port): volar reconnects and resumes after the
    last id it saw, so the ids it prints run on without gap or repeat across the restart.
    """
    shared = {"state_dir": tmp_path / "state", "api_listen": f"127.0.0.1:{free_port()}"}

    def read_until_running(watcher: subprocess.Popen[str], name: str) -> list[dict[str, Any]]:
        assert watcher.stdout is not None
        seen: list[dict[str, Any]] = []
        while not (seen and seen[-1]["type"] == "VM_RUNNING" and seen[-1]["name"] == name):
            seen.append(json.loads(watcher.stdout.readline()))
        return seen

    with contextlib.ExitStack() as cleanup:
        with host_process_daemon(**shared) as first:
            first.request("POST", "/api/v1/plugins", host_manifest)
            watcher = spawn_volar(first, "events", "-o", "json")
            cleanup.callback(reap, watcher)
            eventually(lambda: first.daemon.orchestrator.events.subscriber_count == 1, "volar subscribed")
            volar(first, "vms", "create", "before", "--plugin", "hello-host", "--no-wait")
            seen = read_until_running(watcher, "before")
        with host_process_daemon(**shared) as second:  # "before" was deleted while stopping
            volar(second, "vms", "create", "after", "--plugin", "hello-host", "--no-wait")
            seen += read_until_running(watcher, "after")
        ids = [event["id"] for event in seen]
        assert ids == list(range(ids[0], ids[0] + len(ids))), "no event lost or repeated"
        assert ("VM_DELETED", "before") in {(event["type"], event["name"]) for event in seen}
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=30) == 0


def test_unknown_event_type_is_a_usage_error(api: RunningDaemon) -> None:
    refused = run_volar(api.url, "events", "--type", "NOPE")
    assert refused.returncode == 2 and "unknown event type" in refused.stderr


def test_plugin_commands(api: RunningDaemon, tmp_path: Path) -> None:
    assert "hello-host" in volar(api, "plugins", "list").stdout
    listed = yaml.safe_load(volar(api, "plugins", "list", "-o", "yaml").stdout)
    assert "hello-host" in [p["name"] for p in listed]
    assert json.loads(volar(api, "plugins", "show", "hello-host").stdout)["name"] == "hello-host"
    assert volar(api, "plugins", "disable", "hello-host").stdout.strip() == "hello-host disabled"
    assert api.request("GET", "/api/v1/plugins/hello-host/manifest").status == 409  # not for new VMs
    assert volar(api, "plugins", "enable", "hello-host").stdout.strip() == "hello-host enabled"
    assert api.request("GET", "/api/v1/plugins/hello-host/manifest").status == 200
    manifest = json.loads(volar(api, "plugins", "show", "hello-host").stdout)
    manifest["name"] = "hello-copy"
    (tmp_path / "copy.json").write_text(json.dumps(manifest))
    assert volar(api, "plugins", "install", str(tmp_path / "copy.json")).stdout.startswith(
        "installed hello-copy"
    )
    assert volar(api, "plugins", "remove", "hello-copy").stdout.strip() == "removed hello-copy"


def system_routes(api: RunningDaemon) -> set[str]:
    """The ``/api/v1/system/*`` routes this daemon serves (some are new)."""
    return {p for p in api.request("GET", "/openapi").json()["paths"] if p.startswith("/api/v1/system/")}


def test_system_views(api: RunningDaemon) -> None:
    for args in (("system", "info"), ("system", "summary"), ("system", "status")):
        route = "/api/v1/" + "/".join(args)
        if route not in system_routes(api):
            continue  # routes being added: only those this volantd serves are checked
        before = api.request("GET", route).json()
        as_json = json.loads(volar(api, *args, "-o", "json").stdout)
        as_yaml = yaml.safe_load(volar(api, *args, "-o", "yaml").stdout)
        table = dict(line.partition("  ")[::2] for line in volar(api, *args).stdout.splitlines())
        after = api.request("GET", route).json()
        assert set(as_json) == set(as_yaml) == {key.strip() for key in table} == set(after)
        # Every value that did not change meanwhile (an uptime does) is shown as the API answered it.
        steady = {key: value for key, value in after.items() if before[key] == value}
        assert steady, f"{route}: nothing to compare"
        assert {key: as_json[key] for key in steady} == steady
        assert {key: as_yaml[key] for key in steady} == steady
        shown = {key.strip(): text.strip() for key, text in table.items()}
        assert {key: shown[key] for key in steady} == {key: cell(value) for key, value in steady.items()}


def test_deployment_update(api: RunningDaemon, tmp_path: Path) -> None:
    volar(api, "deployments", "create", "dep", "--plugin", "hello-host", "--replicas", "1")
    config = tmp_path / "dep.json"
    config.write_text(json.dumps({"plugin": "hello-host", "resources": {"memory_mb": 256}}))
    updated = volar(api, "deployments", "update", "dep", "--config", str(config))
    assert updated.stdout.strip() == "dep: rolling out the new configuration"
    eventually(
        lambda: api.request("GET", "/api/v1/vms/dep-1").json().get("memory_mb") == 256, "member reconfigured"
    )
    refused = run_volar(api.url, "deployments", "update", "dep")
    assert refused.returncode == 2 and "--config" in refused.stderr


def test_system_plugins_table_and_yaml(api: RunningDaemon) -> None:
    assert volar(api, "system", "plugins").stdout.split()[:5] == [
        "NAME",
        "STATUS",
        "DISTRIBUTION",
        "VERSION",
        "ERROR",
    ]
    plugins = yaml.safe_load(volar(api, "system", "plugins", "-o", "yaml").stdout)
    assert "core" in [p["name"] for p in plugins]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script(shell: str) -> None:
    script = subprocess.run(
        [str(VOLAR), "completion", shell], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    # The script asks volar itself, through the variable volar answers (see the test below).
    assert f"_VOLAR_COMPLETE={shell}_complete" in script


def test_bash_completes_with_the_script(tmp_path: Path) -> None:
    """``eval "$(volar completion bash)"``, then ``volar vms l<TAB>`` in a real bash."""
    (tmp_path / "volar").symlink_to(VOLAR)
    session = """
        eval "$(volar completion bash)"
        spec=$(complete -p volar) || exit 3
        function=${spec##*-F }; function=${function%% *}
        COMP_WORDS=(volar vms l); COMP_CWORD=2
        "$function" volar l vms
        printf '%s\\n' "${COMPREPLY[@]}"
    """
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    answer = subprocess.run(["bash", "-c", session], capture_output=True, text=True, env=env, timeout=60)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.split() == ["list", "logs"]


def test_completion_completes_commands() -> None:
    """What the bash script asks volar for when the user types ``volar vms l<TAB>``."""
    env = {**os.environ, "_VOLAR_COMPLETE": "bash_complete", "COMP_WORDS": "volar vms l", "COMP_CWORD": "2"}
    answer = subprocess.run([str(VOLAR)], capture_output=True, text=True, env=env, timeout=60, check=True)
    assert answer.stdout.split() == ["plain,list", "plain,logs"]


@pytest.mark.parametrize("args", [("events",), ("vms", "list")])
def test_unreachable_daemon_is_one_line_and_exit_1(args: tuple[str, ...]) -> None:
    result = run_volar("http://127.0.0.1:9", *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot reach volantd at http://127.0.0.1:9")


@pytest.fixture
def served_manifest(hello_manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """hello-http on a free host port, so proxied calls reach it on the host-process backend, with
    an operation whose path has a parameter (``GET /items/{id}``, operation id ``item``).
    """
    manifest = copy.deepcopy(hello_manifest)
    port = free_port()
    workload = manifest["workload"]
    code = workload["entrypoint"][-1].replace('("127.0.0.1", 8000)', f'("127.0.0.1", {port})')
    echo_path = '\\"/echo\\": {'
    assert echo_path in json.dumps(code), "examples/hello-http changed: adapt this fixture"
    item = '"/items/{id}": {"get": {"operationId": "item", "summary": "one item"}},\n    "/echo": {'
    workload["entrypoint"][-1] = code.replace('"/echo": {', item, 1)
    workload["entrypoint"].append(f"volant-test-workload-{uuid.uuid4().hex}")
    workload["base_url"] = f"http://127.0.0.1:{port}"
    manifest["name"] = manifest["runtime"] = "hello-served"
    yield manifest
    kill_mentioning(workload["entrypoint"][-1])


def test_call_substitutes_path_parameters(served_manifest: dict[str, Any]) -> None:
    with host_process_daemon() as api:
        assert api.request("POST", "/api/v1/plugins", served_manifest).status == 201
        volar(api, "vms", "create", "svc", "--plugin", "hello-served")
        rows = json.loads(volar(api, "vms", "operations", "svc", "-o", "json").stdout)
        assert ["echo", "hello", "item"] == [row["operation_id"] for row in rows]
        got = volar(api, "vms", "call", "svc", "item", "--param", "id=42", "--query", "full=1")
        status, _, body = got.stdout.partition("\n")
        assert status == "HTTP 200" and json.loads(body)["path"] == "/items/42?full=1"
        # WSGI hands the path over decoded: volantd quotes it again for kestrel
        # (an encoded "/" arrives as a plain one).
        spaced = volar(api, "vms", "call", "svc", "item", "--param", "id=a b")
        status, _, body = spaced.stdout.partition("\n")
        assert status == "HTTP 200" and json.loads(body)["path"] == "/items/a%20b"
        missing = run_volar(api.url, "vms", "call", "svc", "GET:/items/{id}")
        assert missing.returncode == 2 and "needs id" in missing.stderr
        refused = run_volar(api.url, "vms", "call", "svc", "DELETE:/")
        assert refused.returncode == 2 and "no operation DELETE:/" in refused.stderr
