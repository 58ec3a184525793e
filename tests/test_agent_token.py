"""The per-VM agent token: made from a host key kept under the state directory, delivered to the
guest in its own initramfs layer, asked for by kestrel's TCP listener and sent by the host.

Booted guests (a guest on a bridge trying another's agent) are in tests/e2e/test_agent_isolation.py.
"""

from __future__ import annotations

import http.client
import json
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from volant_core import builtins
from volant_core.agent.__main__ import _take_agent_token
from volant_core.agent.api import TokenGate
from volant_core.agent.constants import AGENT_TOKEN_FILE, AGENT_TOKEN_HEADER, REQUEST_ID_HEADER
from volant_core.agent.httpio import Request, Response
from volant_core.agent.transports import start_socket_server
from volant_core.agent_client import AgentClient
from volant_core.agent_token import KEY_FILE, host_key, token_for, vm_token
from volant_core.channels import TcpChannel, TokenChannel, UnixSocketChannel
from volant_core.descriptors import BootSourceDescriptor
from volant_core.guest.cpio import initramfs_files
from volant_core.manifest import manifest_json, parse_manifest
from volant_core.orchestrator.bootmedia import BootMedia
from volant_core.registry import Registry
from volant_core.settings import load_settings
from volant_core.testing.kestrel import KestrelHost, script_workload
from volant_core.testing.waiting import free_port

WORKLOAD_APP = Path(__file__).parent / "guest" / "workload_app.py"


# --- the host key and the tokens ------------------------------------------------------------


def test_the_host_key_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    key = host_key(tmp_path / "state")
    path = tmp_path / "state" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert host_key(tmp_path / "state") == key  # a restarted daemon derives the same tokens
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE]  # no partial file left


def test_tokens_differ_between_vms_and_hosts(tmp_path: Path) -> None:
    first = vm_token(tmp_path / "one", "web")
    assert first == vm_token(tmp_path / "one", "web")
    assert len({first, vm_token(tmp_path / "one", "db"), vm_token(tmp_path / "two", "web")}) == 3


def test_a_key_file_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_bytes(b"short")
    with pytest.raises(ValueError, match="not a 32-byte agent token key"):
        host_key(tmp_path)


# --- delivery to the guest ------------------------------------------------------------------


def boot_media(tmp_path: Path) -> BootMedia:
    """Boot media over placeholder base images, state in ``tmp_path/state``."""
    kernel, initramfs = tmp_path / "vmlinux", tmp_path / "base.img"
    kernel.write_bytes(b"kernel")
    initramfs.write_bytes(b"")
    settings = load_settings(
        {}, state_dir=tmp_path / "state", kernel=kernel, initramfs=initramfs, artifact_dirs=(tmp_path,)
    )
    sources: Registry[BootSourceDescriptor] = Registry("boot source")
    for source in builtins.volant_boot_sources():
        sources.add(source.name, source, "volant_core")
    return BootMedia(settings, sources, log=lambda _line: None)


def test_the_token_reaches_the_guest_in_a_private_layer_not_on_the_command_line(tmp_path: Path) -> None:
    runtime = parse_manifest(
        {
            "name": "web",
            "version": "1.0.0",
            "workload": {"type": "http", "base_url": "http://127.0.0.1:8000", "entrypoint": ["/bin/true"]},
        }
    )
    plan = boot_media(tmp_path).prepare("web-1", tmp_path / "vm", runtime, "")
    token = vm_token(tmp_path / "state", "web-1")
    assert initramfs_files(plan.initramfs.read_bytes())[AGENT_TOKEN_FILE] == token.encode()
    assert plan.initramfs == tmp_path / "vm" / "initramfs.img"
    assert stat.S_IMODE(plan.initramfs.stat().st_mode) == 0o600
    assert token not in " ".join(plan.kernel_args)
    again = boot_media(tmp_path).prepare("web-1", tmp_path / "vm", runtime, "")  # after a restart
    assert initramfs_files(again.initramfs.read_bytes())[AGENT_TOKEN_FILE] == token.encode()


def test_kestrel_takes_the_token_out_of_the_file_system(tmp_path: Path) -> None:
    path = tmp_path / "agent-token"
    path.write_text("abc\n")
    assert _take_agent_token(path) == "abc"
    assert not path.exists()
    assert _take_agent_token(path) is None  # no token: kestrel does not listen on TCP at all


# --- kestrel's TCP listener and the host's client ------------------------------------------


class Gated:
    """A TCP listener behind :class:`TokenGate` whose handler records what reached it."""

    def __init__(self, token: str) -> None:
        self.reached: list[Request] = []
        self.server = start_socket_server(socket.AF_INET, ("127.0.0.1", 0), TokenGate(self.answer, token))
        self.port = self.server.server_address[1]  # type: ignore[attr-defined]

    def answer(self, request: Request) -> Response:
        """200 with the token header the handler saw."""
        self.reached.append(request)
        return Response.json(200, {"token": request.header(AGENT_TOKEN_HEADER)})

    def raw(self, method: str, path: str, headers: dict[str, str]) -> int:
        """The status of one plain HTTP request (no agent client)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, headers=headers)
            return conn.getresponse().status
        finally:
            conn.close()


@pytest.fixture
def gated() -> Iterator[Gated]:
    """A gated listener with the token of VM ``web``."""
    listener = Gated(token_for(b"k" * 32, "web"))
    yield listener
    listener.server.shutdown()
    listener.server.server_close()


def test_tcp_requests_without_the_token_are_401_and_with_another_403(gated: Gated) -> None:
    other_vm = token_for(b"k" * 32, "db")
    assert gated.raw("POST", "/v1/shutdown", {}) == 401
    assert gated.raw("POST", "/v1/shutdown", {AGENT_TOKEN_HEADER: other_vm}) == 403
    assert gated.raw("GET", "/v1/health", {AGENT_TOKEN_HEADER: ""}) == 403
    assert gated.reached == []  # nothing got past the gate
    assert gated.raw("GET", "/v1/health", {AGENT_TOKEN_HEADER: token_for(b"k" * 32, "web")}) == 200


def test_the_host_sends_the_vms_token_over_a_tcp_channel_whatever_the_caller_says(gated: Gated) -> None:
    token = token_for(b"k" * 32, "web")
    client = AgentClient(TokenChannel(TcpChannel("127.0.0.1", gated.port), token))
    assert client.get("/v1/health").json() == {"token": token}
    forged = client.request("GET", "/v1/health", headers={AGENT_TOKEN_HEADER.lower(): "forged"})
    assert forged.json() == {"token": token}  # a user's header through the agent proxy is replaced
    assert token not in repr(client.channel) and token not in client.channel.describe()


@pytest.fixture
def echoing(volant_kestrel: Callable[..., KestrelHost], tmp_path: Path) -> KestrelHost:
    """kestrel (host mode, UNIX socket) in front of a workload that echoes the headers it gets."""
    port = free_port()
    ready = tmp_path / "ready"
    ready.touch()
    manifest = {
        "name": "echo",
        "version": "1.0.0",
        "workload": script_workload(WORKLOAD_APP, port, str(ready)),
        "health_check": {"endpoint": "/healthz", "timeout_ms": 20000},
    }
    return volant_kestrel(manifest_json(parse_manifest(manifest)))


def test_the_workload_never_sees_the_token(echoing: KestrelHost) -> None:
    channel = TokenChannel(UnixSocketChannel(echoing.socket_path, exclusive=False), "secret-token")
    client = AgentClient(channel)
    client.wait_healthy(30, alive=lambda: True)
    answer = client.request("GET", "/v1/echo", headers={"X-Other": "kept"})
    headers = json.loads(answer.body)["headers"]
    assert headers["x-other"] == "kept"
    assert AGENT_TOKEN_HEADER.lower() not in headers
    assert REQUEST_ID_HEADER.lower() not in headers  # the host's request number is kestrel's alone


def test_threads_racing_for_a_new_key_all_get_the_one_on_disk(tmp_path: Path) -> None:
    """Concurrent first creates of one daemon (each asks for its VM's token) share one key."""
    threads = 16
    barrier = threading.Barrier(threads)
    keys: list[bytes] = []
    errors: list[BaseException] = []

    def ask() -> None:
        barrier.wait()
        try:
            keys.append(host_key(tmp_path))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=ask) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert set(keys) == {(tmp_path / KEY_FILE).read_bytes()}
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILE]  # no partial file left
