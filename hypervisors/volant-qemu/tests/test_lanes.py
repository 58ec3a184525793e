"""The agent channel's lanes: one connection per virtio-serial port, several ports per guest."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import volant_qemu.paths
from volant_qemu.instance import QemuInstance
from volant_qemu.launcher import QemuLauncher
from volant_qemu.paths import VmPaths

from volant_core.agent_client import AgentClient
from volant_core.channels import SerialLaneChannel
from volant_core.errors import AgentTimeout, BusyError
from volant_core.launch import LaunchSpec
from volant_core.manifest import manifest_json, parse_manifest
from volant_core.testing.kestrel import KestrelHost, http_server_workload

Reap = Callable[[QemuInstance], QemuInstance]
#: Seconds a guest may take to answer healthy under TCG.
BOOT_TIMEOUT = 90.0


@pytest.fixture
def kestrel(volant_kestrel: Callable[..., KestrelHost], tmp_path: Path) -> KestrelHost:
    """A kestrel in host mode (one UNIX socket, any number of connections) with a tiny workload."""
    manifest = {"name": "lanes", "version": "1.0.0", "workload": http_server_workload(tmp_path)}
    started = volant_kestrel(manifest_json(parse_manifest(manifest)))
    started.wait_listening()
    return started


def test_busy_lanes_make_a_request_wait_then_time_out(kestrel: KestrelHost) -> None:
    channel = SerialLaneChannel([kestrel.socket_path] * 2)  # two lanes leading to the same kestrel
    client = AgentClient(channel)
    held = [channel.connect(5), channel.connect(5)]  # both lanes taken
    with pytest.raises(AgentTimeout) as caught:
        client.get("/v1/manifest", timeout=0.5)
    assert "all 2 lanes" in caught.value.message and str(kestrel.socket_path) in caught.value.message

    with ThreadPoolExecutor(max_workers=1) as pool:
        answer = pool.submit(client.get, "/v1/manifest", timeout=60)
        held.pop().close()  # frees a lane: the waiting request takes it
        assert answer.result(60).status == 200
    held.pop().close()


def test_more_requests_than_lanes_all_get_answered(kestrel: KestrelHost) -> None:
    channel = SerialLaneChannel([kestrel.socket_path] * 2)
    client = AgentClient(channel)
    barrier = threading.Barrier(6)

    def manifest(_: int) -> int:
        barrier.wait(10)
        return client.get("/v1/manifest", timeout=60).status

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(manifest, range(6))) == [200] * 6
    client.close()  # the kept connections give their lanes back
    held = [channel.connect(5), channel.connect(5)]
    for sock in held:
        sock.close()


def test_streams_held_open_never_take_the_lane_kept_for_health_probes(kestrel: KestrelHost) -> None:
    channel = SerialLaneChannel([kestrel.socket_path] * 2)
    client = AgentClient(channel)
    held = client.open("GET", "/v1/manifest", timeout=60)  # an answer nobody reads holds its lane
    with pytest.raises(BusyError) as starved:  # a 503 to retry later, not a timeout of the guest
        client.get("/v1/manifest", timeout=0.5)
    assert "kept for health probes" in starved.value.message
    assert client.request("GET", "/v1/health", reserved=True, timeout=60).status == 200
    held.close()
    assert client.get("/v1/manifest", timeout=60).status == 200
    client.close()


@pytest.mark.e2e
@pytest.mark.usefixtures("qemu_binary")
def test_vm_started_with_fewer_lanes_works_after_adoption(
    guest_spec: LaunchSpec, volant_reap: Reap, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A QEMU started by an older Volant, with the single port it used to get.
    with monkeypatch.context() as older:
        older.setattr(volant_qemu.paths, "AGENT_LANES", 1)
        instance = volant_reap(QemuLauncher().launch(guest_spec))
    client = AgentClient(instance.agent_channel)
    client.wait_healthy(BOOT_TIMEOUT, alive=instance.alive)
    client.close()
    assert [p.name for p in VmPaths(guest_spec.vm_dir).agent_sockets if p.exists()] == ["agent.sock"]

    adopted = QemuLauncher().adopt(guest_spec, instance.pid)
    assert adopted is not None
    channel = adopted.agent_channel
    client = AgentClient(channel)
    held = channel.connect(BOOT_TIMEOUT)  # the only lane is busy: requests wait for it, never fail
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = pool.map(lambda _: client.get("/v1/health", timeout=60), range(2))
        held.close()
        assert [answer.status for answer in answers] == [200, 200]
    client.close()
