"""The serial console remotely: ``/ws/v1/vms/{name}/console`` and ``volar vms console`` in a pty,
against a real guest, with an API key set on the daemon.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import select
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from volant_core.guest import GuestArtifacts
from volant_core.testing.cli import VOLAR, run_volar
from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.pytest_plugin import require_qemu
from volant_core.testing.waiting import eventually

pytestmark = pytest.mark.e2e

KEY = "console-test-key"
KEY_HEADERS = {"X-Volant-API-Key": KEY}
#: A guest command that says when it can be interrupted (the quotes keep the echo of what was typed
#: from matching), then reports the SIGINT it gets.
INTERRUPTIBLE_JOB = (
    b"sh -c 'trap \"echo got-SIG$((1))INT; exit 3\" INT; echo wait''ing; while :; do sleep 1; done'\r"
)
#: What one read of the pty may wait for before the test gives up (a TCG guest is slow).
READ_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def keyed_web(volant_guest: GuestArtifacts, hello_manifest_module: dict[str, Any]) -> Iterator[RunningDaemon]:
    """A daemon requiring an API key, with one running guest ``web`` of examples/hello-http."""
    require_qemu()
    with running_daemon(volant_guest, api_key=KEY) as anonymous:
        daemon = dataclasses.replace(anonymous, api_key=KEY)
        assert daemon.request("POST", "/api/v1/plugins", hello_manifest_module).status == 201
        assert daemon.request("POST", "/api/v1/vms", {"name": "web", "plugin": "hello-http"}).status == 201
        assert daemon.wait_for_status("web", {"running", "crashed"})["status"] == "running"
        yield daemon


def ws_url(daemon: RunningDaemon, name: str) -> str:
    """The console WebSocket URL of VM ``name``."""
    return daemon.url.replace("http://", "ws://") + f"/ws/v1/vms/{name}/console"


class Pty:
    """``volar`` running on a pseudo-terminal, as a person would run it."""

    def __init__(self, *argv: str) -> None:
        self.master, slave = os.openpty()
        self.process = subprocess.Popen(
            [str(VOLAR), *argv], stdin=slave, stdout=slave, stderr=slave, start_new_session=True
        )
        os.close(slave)
        self.seen = b""
        self._typed_at = 0  # where the output that followed the last keys typed starts

    def read_until(self, needle: bytes, timeout: float = READ_TIMEOUT_S) -> bytes:
        """Everything read so far, once what followed the last keys typed contains ``needle``."""
        deadline = time.monotonic() + timeout
        while needle not in self.seen[self._typed_at :]:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.master], [], [], remaining)[0]:
                raise AssertionError(f"{needle!r} never appeared; the terminal shows:\n{self.seen!r}")
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: volar exited and closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"volar ended before {needle!r}; the terminal shows:\n{self.seen!r}")
            self.seen += chunk
        return self.seen

    def type(self, keys: bytes) -> None:
        """Type ``keys`` on the terminal."""
        self._typed_at = len(self.seen)
        os.write(self.master, keys)

    def shell_prompt(self) -> None:
        """Press Enter and wait for the guest shell's prompt, as a person would before typing."""
        self.type(b"\r")
        self.read_until(b"# ")

    def wait(self) -> int:
        """volar's exit status (draining the terminal so it never blocks on output)."""
        with contextlib.suppress(OSError):
            while select.select([self.master], [], [], 1)[0] and (chunk := os.read(self.master, 4096)):
                self.seen += chunk
        return self.process.wait(30)

    def close(self) -> None:
        """Kill volar if it still runs and close the terminal."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        os.close(self.master)


@contextlib.contextmanager
def volar_on_pty(*argv: str) -> Iterator[Pty]:
    """Run ``volar ARGV`` on a pty for the duration of the block."""
    terminal = Pty(*argv)
    try:
        yield terminal
    finally:
        terminal.close()


def attach(daemon: RunningDaemon, name: str = "web", **options: Any) -> ClientConnection:
    """A raw WebSocket client on VM ``name``'s console, with the API key."""
    return connect(ws_url(daemon, name), additional_headers=KEY_HEADERS, open_timeout=30, **options)


def test_volar_console_runs_a_typed_command_and_detaches_with_ctrl_bracket(keyed_web: RunningDaemon) -> None:
    with volar_on_pty("--api", keyed_web.url, "--api-key", KEY, "vms", "console", "web") as terminal:
        terminal.read_until(b"press Ctrl-] to detach")
        terminal.shell_prompt()
        terminal.type(b"echo console-$((6*7))\r")
        terminal.read_until(b"console-42")  # the shell's answer, not the echo of what was typed
        terminal.type(b"\x1d")
        assert terminal.wait() == 0, terminal.seen
        assert b"Detached from the console of web." in terminal.seen
    logs = keyed_web.request("GET", "/api/v1/vms/web/logs?tail=100000")
    assert b"console-42" in logs.body, "the session is in the console log too"


def test_ctrl_c_reaches_the_guest_instead_of_ending_volar(keyed_web: RunningDaemon) -> None:
    with volar_on_pty("--api", keyed_web.url, "--api-key", KEY, "vms", "console", "web") as terminal:
        terminal.read_until(b"press Ctrl-] to detach")
        terminal.shell_prompt()
        # A foreground job that says when it can be interrupted, and what interrupted it.
        terminal.type(INTERRUPTIBLE_JOB)
        terminal.read_until(b"waiting")
        terminal.type(b"\x03")  # Ctrl-C: goes to the guest's foreground job, not to volar
        terminal.read_until(b"got-SIG1INT")
        terminal.shell_prompt()
        terminal.type(b"echo after-$((40+2))\r")
        terminal.read_until(b"after-42")
        assert terminal.process.poll() is None
        terminal.type(b"\x1d")
        assert terminal.wait() == 0


def test_one_session_at_a_time(keyed_web: RunningDaemon) -> None:
    with attach(keyed_web):
        second = run_volar(keyed_web.url, "--api-key", KEY, "vms", "console", "web")
        assert second.returncode == 4, second
        assert second.stderr.count("\n") == 1 and "attached in another session" in second.stderr
    eventually(lambda: can_attach(keyed_web), "the console is free again once the first session left")


def can_attach(daemon: RunningDaemon) -> bool:
    """Whether a console session opens now (False while another one holds it)."""
    try:
        with attach(daemon):
            pass
    except InvalidStatus as refused:
        assert refused.response.status_code == 409
        return False
    return True


def test_wrong_key_missing_key_and_unknown_vm_are_one_line_errors(keyed_web: RunningDaemon) -> None:
    wrong = run_volar(keyed_web.url, "--api-key", "nope", "vms", "console", "web")
    assert wrong.returncode == 6 and wrong.stderr.count("\n") == 1 and "HTTP 401" in wrong.stderr
    with pytest.raises(InvalidStatus) as missing:
        connect(ws_url(keyed_web, "web"), open_timeout=30)
    assert missing.value.response.status_code == 401
    unknown = run_volar(keyed_web.url, "--api-key", KEY, "vms", "console", "ghost")
    assert unknown.returncode == 3 and "ghost" in unknown.stderr and unknown.stderr.count("\n") == 1


def test_a_page_from_a_foreign_origin_may_not_open_the_console(keyed_web: RunningDaemon) -> None:
    with pytest.raises(InvalidStatus) as refused:
        attach(keyed_web, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    assert b"VOLANT_CORS_ORIGINS" in refused.value.response.body


def test_a_plain_get_is_told_to_upgrade(keyed_web: RunningDaemon) -> None:
    reply = keyed_web.request("GET", "/ws/v1/vms/web/console")
    assert reply.status == 422
    assert reply.json()["error"]["details"][0]["field"] == "Upgrade"


def test_volant_console_off_keeps_the_shell_off_the_console(keyed_web: RunningDaemon) -> None:
    create = {"name": "quiet", "plugin": "hello-http", "kernel_cmdline": "volant.console=off"}
    assert keyed_web.request("POST", "/api/v1/vms", create).status == 201
    try:
        assert keyed_web.wait_for_status("quiet", {"running", "crashed"})["status"] == "running"
        console = keyed_web.request("GET", "/api/v1/vms/quiet/logs?tail=100000").body
        assert b"no console shell (volant.console=off)" in console
        assert b"built-in shell" not in console
    finally:
        assert keyed_web.request("DELETE", "/api/v1/vms/quiet").status in (200, 204)


def test_a_boot_that_hangs_can_be_watched_on_the_console_and_killed_at_once(
    keyed_web: RunningDaemon, hello_manifest_module: dict[str, Any]
) -> None:
    # hello-http whose health check asks a port nothing serves: the VM stays starting, and kestrel
    # says on the console when the check did not pass in time.
    manifest = copy.deepcopy(hello_manifest_module)
    manifest["name"] = manifest["runtime"] = "hangs"
    manifest["workload"]["base_url"] = "http://127.0.0.1:8001"
    manifest["health_check"]["timeout_ms"] = 15_000
    assert keyed_web.request("POST", "/api/v1/plugins", manifest).status == 201
    assert keyed_web.request("POST", "/api/v1/vms", {"name": "hanging", "plugin": "hangs"}).status == 201
    try:
        with attach(keyed_web, "hanging") as session:
            seen = b""
            deadline = time.monotonic() + READ_TIMEOUT_S
            while b"did not pass within 15000 ms" not in seen:
                assert time.monotonic() < deadline, f"the console never told of the failing check: {seen!r}"
                data = session.recv(timeout=READ_TIMEOUT_S)
                seen += data if isinstance(data, bytes) else data.encode()
            assert keyed_web.request("GET", "/api/v1/vms/hanging").json()["status"] == "starting"
        assert keyed_web.request("DELETE", "/api/v1/vms/hanging?force=true").status == 204
        stopped = [e for e in keyed_web.daemon.store.events.since(0) if e.vm_name == "hanging"][-2]
        assert stopped.type == "VM_STOPPED" and stopped.payload["data"]["exit_status"] == -9
    finally:
        keyed_web.request("DELETE", "/api/v1/vms/hanging?force=true")
        keyed_web.request("DELETE", "/api/v1/plugins/hangs")


def test_the_session_ends_with_a_reason_when_the_vm_stops(keyed_web: RunningDaemon) -> None:
    with volar_on_pty("--api", keyed_web.url, "--api-key", KEY, "vms", "console", "web") as terminal:
        terminal.read_until(b"press Ctrl-] to detach")
        assert keyed_web.request("POST", "/api/v1/vms/web/stop").status == 200
        assert terminal.wait() == 0, terminal.seen
        assert b"the console closed: the VM stopped" in terminal.seen
    stopped = run_volar(keyed_web.url, "--api-key", KEY, "vms", "console", "web")
    assert stopped.returncode == 4 and "volar vms start web" in stopped.stderr
