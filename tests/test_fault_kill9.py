"""Fault suite: volantd killed with SIGKILL during a create, a delete and a deployment's scale-up,
then started again on the same state directory.

Afterwards every VM settles (``running``, ``crashed`` with a reason, or ``stopped``) and tells the
truth, no VMM process runs without its row, no VM directory or IP lease is left without one, and the
API can still delete everything. volantd is a real process (the ``volantd`` executable with the TEST
backend ``test-host-process`` registered: kestrel runs on the host, see
:mod:`volant_core.testing.hostvm`); the VMs lease addresses (the TEST mode ``test-leased-ip``). The
kill is timed by the event stream: the moment volantd publishes the event named, it gets SIGKILL.
The QEMU case is in ``tests/e2e/test_fault_kill9_qemu.py``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from volant_core.cli.client import ApiClient, ApiError, Unreachable
from volant_core.netdev import tap_name
from volant_core.orchestrator.deployments import member_index
from volant_core.testing.daemon import RunningProcess, volantd_process
from volant_core.testing.faults import inconsistencies, settled_vms, sigkill_on_event
from volant_core.testing.host_volantd import HOST_VOLANTD, TAP_BACKEND
from volant_core.testing.hostvm import NAME as HOST_BACKEND
from volant_core.testing.hostvm import placeholder_boot_files
from volant_core.testing.leased_ip import LeasedIpMode
from volant_core.testing.netns import NetworkNamespace, network_namespace
from volant_core.testing.processes import scratch_dir
from volant_core.testing.waiting import eventually, free_port

pytestmark = pytest.mark.faults


class Volantd:
    """How to start volantd (again) on one state directory and port."""

    def __init__(self, state_dir: Path, boot: dict[str, Path]) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.env = {
            **os.environ,
            "VOLANT_HYPERVISOR": HOST_BACKEND,
            "VOLANT_KERNEL": str(boot["kernel"]),
            "VOLANT_INITRAMFS": str(boot["initramfs"]),
            "VOLANT_NETWORK_MODE": LeasedIpMode.mode,
            "VOLANT_STOP_TIMEOUT": "5",
            "VOLANT_RECONCILE_INTERVAL": "0.5",
        }

    def run(self) -> AbstractContextManager[RunningProcess]:
        """volantd as a child process (killed at the end if it still runs)."""
        return volantd_process(self.state_dir, self.port, env=self.env, command=HOST_VOLANTD)


@pytest.fixture
def volantd() -> Iterator[Volantd]:
    """A short state directory for volantd; every process naming it is killed at the end."""
    with scratch_dir("vk-") as state, placeholder_boot_files() as boot:
        yield Volantd(state, boot)


def in_background(call: Callable[[], Any]) -> threading.Thread:
    """Run ``call`` in a thread; the ApiError of a volantd killed while it answers is expected."""

    def run() -> None:
        try:
            call()
        except ApiError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def consistent_after_restart(volantd: Volantd) -> list[dict[str, Any]]:
    """Start volantd again, wait until every VM settled, assert nothing disagrees; the VMs."""
    with volantd.run() as again:
        vms = settled_vms(again.client())
        assert inconsistencies(vms, volantd.state_dir) == []
        return vms


def delete_everything(api: ApiClient, state_dir: Path) -> None:
    """Delete every deployment and VM through the API; assert nothing is left of them."""
    for deployment in api.json("GET", "/api/v1/deployments"):
        assert api.send("DELETE", f"/api/v1/deployments/{deployment['name']}").status in (200, 202, 204)
    for vm in api.json("GET", "/api/v1/vms"):
        reply = api.send("DELETE", f"/api/v1/vms/{vm['name']}")
        assert reply.status in (204, 404), reply.body
    remaining = eventually(lambda: api.json("GET", "/api/v1/vms") == [] or None, "every VM to be deleted")
    assert remaining
    assert inconsistencies([], state_dir) == []


@pytest.mark.parametrize("event", ["VM_CREATED", "VM_STARTING"])
def test_killed_during_create(volantd: Volantd, host_manifest: dict[str, Any], event: str) -> None:
    with volantd.run() as first:
        api = first.client()
        assert api.send("POST", "/api/v1/plugins", host_manifest).status == 201
        with sigkill_on_event(first.process, api, event):
            creating = in_background(
                lambda: api.send("POST", "/api/v1/vms", {"name": "a", "plugin": "hello-host"})
            )
        creating.join(30)

    with volantd.run() as second:
        api = second.client()
        [vm] = settled_vms(api)
        assert vm["status"] in {"running", "crashed"}, vm
        assert inconsistencies([vm], volantd.state_dir) == []
        delete_everything(api, volantd.state_dir)


def test_killed_during_delete(volantd: Volantd, host_manifest: dict[str, Any]) -> None:
    with volantd.run() as first:
        api = first.client()
        assert api.send("POST", "/api/v1/plugins", host_manifest).status == 201
        for name in ("a", "b"):
            assert api.send("POST", "/api/v1/vms", {"name": name, "plugin": "hello-host"}).status == 201
        eventually(
            lambda: [vm["status"] for vm in settled_vms(api)] == ["running", "running"], "two VMs running"
        )
        with sigkill_on_event(first.process, api, "VM_STOPPING"):
            deleting = in_background(lambda: api.send("DELETE", "/api/v1/vms/a"))
        deleting.join(30)

    with volantd.run() as second:
        api = second.client()
        vms = {vm["name"]: vm for vm in settled_vms(api)}
        assert vms["a"]["status"] in {"running", "crashed"}, vms["a"]
        assert vms["b"]["status"] == "running", "the VM nobody touched is re-adopted"
        assert inconsistencies(list(vms.values()), volantd.state_dir) == []
        delete_everything(api, volantd.state_dir)


def deployment_runs(api: ApiClient, replicas: int, kernel_cmdline: str | None = None) -> bool:
    """Whether deployment ``web`` has exactly ``replicas`` members and no other VM exists, all settled
    and running (with ``kernel_cmdline`` configured, when given). Which indexes they have is the
    controller's choice: a crashed member's replacement takes a free one (ADR 0028).
    """
    vms = settled_vms(api)
    if len(vms) != replicas or any(
        vm["status"] != "running" or member_index("web", vm["name"]) is None for vm in vms
    ):
        return False
    if kernel_cmdline is None:
        return True
    replies = [api.send("GET", f"/api/v1/vms/{vm['name']}/config") for vm in vms]  # 404: being replaced
    return all(r.status == 200 and r.json()["config"]["kernel_cmdline"] == kernel_cmdline for r in replies)


def start_deployment(api: ApiClient, host_manifest: dict[str, Any], replicas: int) -> None:
    """Install hello-host, create deployment ``web`` of ``replicas`` members; wait until they run."""
    assert api.send("POST", "/api/v1/plugins", host_manifest).status == 201
    body = {"name": "web", "replicas": replicas, "config": {"plugin": "hello-host"}}
    assert api.send("POST", "/api/v1/deployments", body).status == 201
    eventually(lambda: deployment_runs(api, replicas), f"{replicas} members of web running")


def patch_racing_the_kill(api: ApiClient, change: dict[str, Any]) -> None:
    """PATCH deployment ``web`` with ``change``: answered 200, or volantd killed before its answer
    went out (the controller acts on the stored change in a thread of its own, so the event that
    triggers the kill may come first). Either way the change was stored: the restart must finish it.
    """
    try:
        assert api.send("PATCH", "/api/v1/deployments/web", change).status == 200
    except Unreachable:
        pass


def test_killed_during_a_deployment_scale_up(volantd: Volantd, host_manifest: dict[str, Any]) -> None:
    with volantd.run() as first:
        api = first.client()
        start_deployment(api, host_manifest, 1)
        with sigkill_on_event(first.process, api, "VM_STARTING", count=2):
            patch_racing_the_kill(api, {"replicas": 4})

    with volantd.run() as second:  # checked once the controller rests: it changes rows, leases, processes
        api = second.client()
        eventually(lambda: deployment_runs(api, 4), "4 running members after the restart", timeout=120)
        assert inconsistencies(settled_vms(api), volantd.state_dir) == []
        delete_everything(api, volantd.state_dir)


def test_killed_during_a_deployment_config_rollout(volantd: Volantd, host_manifest: dict[str, Any]) -> None:
    with volantd.run() as first:
        api = first.client()
        start_deployment(api, host_manifest, 3)
        change = {"config": {"plugin": "hello-host", "kernel_cmdline": "rev=2"}}
        with sigkill_on_event(first.process, api, "VM_STOPPING"):  # the first member being replaced
            patch_racing_the_kill(api, change)

    with volantd.run() as second:  # checked once the controller rests: it changes rows, leases, processes
        api = second.client()
        eventually(
            lambda: deployment_runs(api, 3, "rev=2"),
            "the rollout to finish after the restart",
            timeout=120,
        )
        assert inconsistencies(settled_vms(api), volantd.state_dir) == []
        delete_everything(api, volantd.state_dir)


BRIDGE = "vkbr0"
SUBNET = "10.96.0.0/24"
HOST_IP = "10.96.0.1"


def taps(ns: NetworkNamespace) -> set[str]:
    """The tap devices in ``ns`` (every link but the bridge)."""
    return set(ns.links()) - {BRIDGE}


def test_killed_during_delete_and_create_on_a_bridge(volantd: Volantd, host_manifest: dict[str, Any]) -> None:
    """The ``bridged`` mode in a network namespace of the test (on the TEST backend that claims tap
    NICs: each VM's tap is made, kestrel does not use it): after each kill and restart, the taps on
    the bridge are exactly those of the VMs that run (no tap leaked, none missing).
    """
    volantd.env.update(
        VOLANT_HYPERVISOR=TAP_BACKEND,
        VOLANT_NETWORK_MODE="bridged",
        VOLANT_SUBNET=SUBNET,
        VOLANT_HOST_IP=HOST_IP,
        VOLANT_BRIDGED_BRIDGE=BRIDGE,
        VOLANT_BRIDGED_DNS=HOST_IP,
    )
    with network_namespace("volant-fault") as ns:
        ns.ipr.link("add", ifname=BRIDGE, kind="bridge")
        (bridge,) = ns.ipr.link_lookup(ifname=BRIDGE)
        ns.ipr.addr("add", index=bridge, address=HOST_IP, prefixlen=24)
        ns.ipr.link("set", index=bridge, state="up")

        def running_taps(api: ApiClient) -> set[str]:
            return {tap_name(vm["name"]) for vm in settled_vms(api) if vm["status"] == "running"}

        try:
            with ns.enter():  # volantd, its VMs and this test's requests all in the namespace
                with volantd.run() as first:
                    api = first.client()
                    assert api.send("POST", "/api/v1/plugins", host_manifest).status == 201
                    for name in ("a", "b"):
                        assert (
                            api.send("POST", "/api/v1/vms", {"name": name, "plugin": "hello-host"}).status
                            == 201
                        )
                    assert taps(ns) == running_taps(api) == {tap_name("a"), tap_name("b")}
                    with sigkill_on_event(first.process, api, "VM_STOPPING"):
                        deleting = in_background(lambda: api.send("DELETE", "/api/v1/vms/a"))
                    deleting.join(30)
                with volantd.run() as second:
                    api = second.client()
                    assert inconsistencies(settled_vms(api), volantd.state_dir) == []
                    assert taps(ns) == running_taps(api)
                    with sigkill_on_event(second.process, api, "VM_STARTING"):
                        creating = in_background(
                            lambda: api.send("POST", "/api/v1/vms", {"name": "c", "plugin": "hello-host"})
                        )
                    creating.join(30)
                with volantd.run() as third:
                    api = third.client()
                    assert inconsistencies(settled_vms(api), volantd.state_dir) == []
                    assert taps(ns) == running_taps(api)
                    delete_everything(api, volantd.state_dir)
                    assert taps(ns) == set()
        finally:
            ns.ipr.link("del", index=bridge)
