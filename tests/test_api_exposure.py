"""Who can reach the API, and who can read volantd's files (issue 12, findings 1 and 10; ADR 25).

Against a real volantd over real sockets: JSON bodies need ``Content-Type: application/json``
(a web page can send ``text/plain`` without a CORS preflight), a ``Host`` that is not one of
volantd's names is refused (DNS rebinding), volantd refuses to listen beyond loopback without a
key and takes no key on its command line, and what it writes under its state directory is
readable by its own user only.
"""

from __future__ import annotations

import http.client
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core.errors import ValidationError
from volant_core.settings import load_settings
from volant_core.testing.daemon import RunningDaemon, running_daemon, volantd_process
from volant_core.testing.waiting import free_port

VOLANTD = Path(sys.executable).with_name("volantd")


def _send(
    daemon: RunningDaemon, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """One request with exactly ``headers`` (``Host`` too, when given): status and JSON body."""
    host, port = daemon.daemon.server.address
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        reply = connection.getresponse()
        return reply.status, json.loads(reply.read() or b"null")
    finally:
        connection.close()


def _vm_names(daemon: RunningDaemon) -> list[str]:
    return [vm["name"] for vm in daemon.request("GET", "/api/v1/vms").json()]


def _tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


# --- Content-Type ------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ],
)
def test_a_vm_body_not_sent_as_json_is_refused_and_creates_nothing(
    host_api: RunningDaemon, content_type: str | None
) -> None:
    """What a web page on any site can POST without a preflight: 415 naming the header, no VM."""
    body = json.dumps({"name": "from-a-page", "plugin": "hello-host"}).encode()
    before = _tree(host_api.state_dir)
    headers = {} if content_type is None else {"Content-Type": content_type}
    status, answer = _send(host_api, "POST", "/api/v1/vms", body, headers)
    assert status == 415, answer
    assert answer["error"]["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in answer["error"]["message"]
    assert answer["error"]["details"][0]["field"] == "Content-Type"
    assert _vm_names(host_api) == []
    assert _tree(host_api.state_dir) == before


def test_the_same_body_as_json_creates_the_vm(host_api: RunningDaemon) -> None:
    """The control: the refused body is a good one, and a ``charset`` parameter is fine."""
    body = json.dumps({"name": "from-a-client", "plugin": "hello-host"}).encode()
    headers = {"Content-Type": "Application/JSON; charset=utf-8"}
    status, answer = _send(host_api, "POST", "/api/v1/vms", body, headers)
    assert status == 201, answer
    assert _vm_names(host_api) == ["from-a-client"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/plugins", None),  # the manifest fixture's body
        ("/api/v1/deployments", {"name": "dep", "replicas": 1, "config": {"plugin": "hello-host"}}),
    ],
)
def test_other_json_routes_refuse_text_plain(
    host_api: RunningDaemon, host_manifest: dict[str, Any], path: str, body: dict[str, Any] | None
) -> None:
    manifest = {**host_manifest, "name": "other", "runtime": "other"}
    payload = json.dumps(body if body is not None else manifest).encode()
    status, answer = _send(host_api, "POST", path, payload, {"Content-Type": "text/plain"})
    assert status == 415, answer
    assert [p["name"] for p in host_api.request("GET", "/api/v1/plugins").json()["plugins"]] == ["hello-host"]
    assert host_api.request("GET", "/api/v1/deployments").json() == []


# --- Origin ------------------------------------------------------------------


def test_a_page_from_another_site_cannot_stop_a_vm(host_api: RunningDaemon) -> None:
    """A bodyless POST needs no preflight; the browser still says where the page came from."""
    assert host_api.request("POST", "/api/v1/vms", {"name": "kept", "plugin": "hello-host"}).status == 201
    host_api.wait_for_status("kept", {"running"})
    headers = {"Origin": "https://attacker.example"}
    status, answer = _send(host_api, "POST", "/api/v1/vms/kept/stop", None, headers)
    assert status == 403, answer
    assert answer["error"]["message"] == (
        "a web page from https://attacker.example may not change anything here; list its origin in "
        "VOLANT_CORS_ORIGINS to allow it"
    )
    assert [detail["field"] for detail in answer["error"]["details"]] == ["Origin"]
    assert _send(host_api, "DELETE", "/api/v1/vms/kept", None, headers)[0] == 403
    assert host_api.request("GET", "/api/v1/vms/kept").json()["status"] == "running"
    assert _send(host_api, "GET", "/api/v1/vms/kept", None, headers)[0] == 200  # reading: CORS decides


def test_a_listed_origin_may_change_things() -> None:
    with running_daemon(cors_origins="https://console.example") as daemon:
        headers = {"Origin": "https://console.example", "Content-Type": "application/json"}
        assert _send(daemon, "POST", "/api/v1/vms/ghost/stop", None, headers)[0] == 404
        assert (
            _send(daemon, "POST", "/api/v1/vms/ghost/stop", None, {"Origin": "https://other.example"})[0]
            == 403
        )


# --- Host --------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["rebound.example", "rebound.example:7777", "localhost.example", "[::1].evil"]
)
def test_a_foreign_host_is_refused_naming_the_setting(volantd: RunningDaemon, host: str) -> None:
    """A page whose DNS name was pointed at 127.0.0.1 (DNS rebinding) cannot read the answers."""
    status, answer = _send(volantd, "GET", "/api/v1/system/info", None, {"Host": host})
    assert status == 421, answer
    assert answer["error"]["code"] == "misdirected"
    assert answer["error"]["message"] == (
        f"Host {host!r} is not a name of this volantd; reach it by address or localhost, "
        "or add the name to VOLANT_API_HOSTS (comma-separated)"
    )
    assert [detail["field"] for detail in answer["error"]["details"]] == ["Host"]
    assert "api_listen" not in json.dumps(answer)


@pytest.mark.parametrize(
    "host",
    [
        *("127.0.0.1", "127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "[::1]:{port}"),
        # Any address: a volantd listening on one of the host's LAN addresses is reached by it.
        *("192.0.2.10:{port}", "[2001:db8::1]:{port}"),
    ],
)
def test_loopback_names_and_addresses_are_answered(volantd: RunningDaemon, host: str) -> None:
    port = volantd.daemon.server.address[1]
    status, answer = _send(volantd, "GET", "/api/v1/system/info", None, {"Host": host.format(port=port)})
    assert status == 200, answer


def test_names_in_volant_api_hosts_are_answered() -> None:
    with running_daemon(api_hosts="volant.example, Console.Example.") as daemon:
        for host in ("volant.example:7777", "console.example", "CONSOLE.example."):
            assert _send(daemon, "GET", "/api/v1/vms", None, {"Host": host})[0] == 200, host
        assert _send(daemon, "GET", "/api/v1/vms", None, {"Host": "other.example"})[0] == 421


def test_a_foreign_host_cannot_create_either(host_api: RunningDaemon) -> None:
    body = json.dumps({"name": "rebound", "plugin": "hello-host"}).encode()
    headers = {"Host": "rebound.example", "Content-Type": "application/json"}
    assert _send(host_api, "POST", "/api/v1/vms", body, headers)[0] == 421
    assert _vm_names(host_api) == []


def test_volant_api_hosts_must_be_names(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"^VOLANT_API_HOSTS: .*http://volant\.example"):
        load_settings({"VOLANT_API_HOSTS": "http://volant.example"}, state_dir=tmp_path)


# --- listening beyond loopback ------------------------------------------------


def _run_volantd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VOLANT_API_KEY")}
    return subprocess.run(
        [str(VOLANTD), *args],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("listen", ["0.0.0.0:{port}", "[::]:{port}", "volant.example:{port}"])
def test_volantd_beyond_loopback_without_a_key_refuses_to_start(tmp_path: Path, listen: str) -> None:
    result = _run_volantd("--listen", listen.format(port=free_port()), "--state-dir", str(tmp_path))
    assert result.returncode != 0
    assert "--listen" in result.stderr and "VOLANT_API_KEY_FILE" in result.stderr, result.stderr
    assert not (tmp_path / "state.db").exists()


def test_a_key_lets_volantd_listen_beyond_loopback(tmp_path: Path) -> None:
    """The control of the refusal above: the same settings with a key file are accepted."""
    key = tmp_path / "key"
    key.write_text("a-long-enough-key\n")
    key.chmod(0o600)
    settings = load_settings(
        {"VOLANT_API_LISTEN": "0.0.0.0:7777", "VOLANT_API_KEY_FILE": str(key)}, state_dir=tmp_path
    )
    assert settings.api_key == "a-long-enough-key"
    assert load_settings({"VOLANT_API_LISTEN": "127.0.0.2:7777"}, state_dir=tmp_path).api_key is None


def test_volantd_takes_no_key_on_its_command_line(tmp_path: Path) -> None:
    """``ps`` shows every process's arguments to every user: ``--api-key`` is refused, with the way."""
    result = _run_volantd("--api-key", "visible-to-all", "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert "--api-key-file" in result.stderr and "ps" in result.stderr
    assert not (tmp_path / "state.db").exists()


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o640, True), (0o600, False)])
def test_a_key_file_others_can_read_is_warned_about(tmp_path: Path, mode: int, warned: bool) -> None:
    key = tmp_path / "key"
    key.write_text("a-long-enough-key\n")
    key.chmod(mode)
    state = tmp_path / "state"
    state.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLANT_API_KEY")}
    with volantd_process(state, free_port(), env={**env, "VOLANT_API_KEY_FILE": str(key)}) as daemon:
        assert daemon.client().send("GET", "/healthz").status == 200
        log = (state / "volantd.log").read_text()
    assert (f"chmod 600 {key}" in log) is warned, log


# --- files on the host --------------------------------------------------------


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual login umask (022) while the test runs, as volantd would inherit it."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_files_under_the_state_dir_are_private(
    loose_umask: None, volantd_host_process: RunningDaemon, host_manifest: dict[str, Any]
) -> None:
    """After creating a VM (store, boot media, console log, agent socket, kestrel's files), nothing
    under the state directory grants a permission to group or others.
    """
    daemon = volantd_host_process
    assert daemon.request("POST", "/api/v1/plugins", host_manifest).status == 201
    assert daemon.request("POST", "/api/v1/vms", {"name": "private", "plugin": "hello-host"}).status == 201
    daemon.wait_for_status("private", {"running"})
    files = [path for path in daemon.state_dir.rglob("*") if path.is_file()]
    assert daemon.daemon.settings.db_path in files and any(path.name == "initramfs.img" for path in files)
    assert _loose_paths(daemon.state_dir) == {}


def _loose_paths(root: Path) -> dict[str, str]:
    """Paths under ``root`` (itself included) with any group or other permission bit, and their modes."""
    found = {}
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        if not stat.S_ISLNK(info.st_mode) and info.st_mode & 0o077:
            found[str(path)] = oct(stat.S_IMODE(info.st_mode))
    return found


def test_volar_reads_its_key_from_a_file(tmp_path: Path) -> None:
    """``volar --api-key-file``: the key stays out of ``ps``; a wrong key in the file is a 401."""
    volar = Path(sys.executable).with_name("volar")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLANT_API")}
    key = tmp_path / "key"
    with running_daemon(api_key="the-right-key") as daemon:
        results = []
        for content in ("the-right-key\n", "a-wrong-key\n"):
            key.write_text(content)
            argv = [str(volar), "--api", daemon.url, "--api-key-file", str(key), "vms", "list"]
            results.append(
                subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
            )
    assert results[0].returncode == 0, results[0].stderr
    assert results[1].returncode == 6 and "(HTTP 401)" in results[1].stderr


def test_an_existing_state_dir_is_narrowed_at_start(loose_umask: None, tmp_path: Path) -> None:
    """A state directory an older volantd (or the user) made 0755 is 0700 once volantd started,
    its directories inside too; so older 0644 files in it are out of others' reach.
    """
    state = tmp_path / "state"
    (state / "logs").mkdir(parents=True, mode=0o755)
    state.chmod(0o755)
    with volantd_process(state, free_port()) as daemon:
        assert daemon.client().send("GET", "/healthz").status == 200
        modes = {
            path.name: stat.S_IMODE(path.stat().st_mode) for path in (state, state / "logs", state / "run")
        }
    assert modes == {"state": 0o700, "logs": 0o700, "run": 0o700}
