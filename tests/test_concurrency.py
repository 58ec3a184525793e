"""50 concurrent create/delete calls over 10 overlapping names through the real HTTP API.

The VMs run on the ``test-host-process`` backend: real kestrel processes on
real sockets, no guests (see :mod:`volant_core.testing.hostvm`). Whatever the
interleaving, no call may fail with a 5xx, and the database, the IP leases, the
processes and the runtime directory must agree with each other afterwards.
"""

from __future__ import annotations

import ipaddress
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from volant_core.cli.client import Reply
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hooks import HookRecorder
from volant_core.testing.hostvm import host_process_daemon
from volant_core.testing.processes import processes_mentioning
from volant_core.testing.waiting import eventually

NAMES = [f"vm-{i}" for i in range(10)]
CALLS = 50
WORKERS = 8
SUBNET = ipaddress.IPv4Network("10.201.0.0/24")
HOST_IP = ipaddress.IPv4Address("10.201.0.1")
#: Answers a create or delete may get under contention, and what each means.
EXPECTED = {("create", 201), ("create", 409), ("delete", 204), ("delete", 404)}


def run_concurrently(api: RunningDaemon, calls: list[tuple[str, str]]) -> list[tuple[str, str, Reply]]:
    """Send every ``(operation, name)`` call from :data:`WORKERS` threads; the answers in call order."""

    def send(call: tuple[str, str]) -> tuple[str, str, Reply]:
        operation, name = call
        if operation == "create":
            return operation, name, api.request("POST", "/api/v1/vms", {"name": name, "plugin": "hello-host"})
        return operation, name, api.request("DELETE", f"/api/v1/vms/{name}")

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(send, calls))


def check_answers(answers: list[tuple[str, str, Reply]]) -> None:
    """Only the expected statuses; every error has the JSON error body."""
    for operation, name, reply in answers:
        assert (operation, reply.status) in EXPECTED, f"{operation} {name}: {reply.status} {reply.body!r}"
        if reply.status >= 400:
            error = reply.json()["error"]
            assert error["code"] and name in error["message"], reply.body


def check_consistent(api: RunningDaemon, workload_marker: str) -> list[Any]:
    """Rows, leases, processes and directories describe the same VMs, all running; those rows."""
    store = api.daemon.store
    for vm in store.vms.list():
        assert api.wait_for_status(vm.name, {"running", "crashed"}, timeout=60)["status"] == "running"
    rows = store.vms.list()
    names = {vm.name for vm in rows}
    assert {vm["name"] for vm in api.request("GET", "/api/v1/vms").json()} == names
    assert {lease.vm_id for lease in store.ips.leased()} <= {vm.id for vm in rows}
    assert {lease.ip_address for lease in store.ips.leased()} == {vm.ip_address for vm in rows} - {None}
    assert {p.name for p in api.daemon.settings.runtime_dir.iterdir()} == names
    kestrels = processes_mentioning(str(api.state_dir))
    assert len(kestrels) == len(rows) and set(kestrels) == {vm.pid for vm in rows}
    workloads = processes_mentioning(workload_marker)
    assert len(workloads) == len(rows), f"{len(workloads)} workloads for {len(rows)} vms"
    return rows


def check_all_gone(api: RunningDaemon, workload_marker: str) -> None:
    """Nothing left of any VM: no row, lease, process or directory."""
    store = api.daemon.store
    assert store.vms.list() == []
    assert store.ips.leased() == []
    assert list(api.daemon.settings.runtime_dir.iterdir()) == []
    eventually(lambda: not processes_mentioning(str(api.state_dir)), "no kestrel process left")
    eventually(lambda: not processes_mentioning(workload_marker), "no workload process left")


def check_lowest_free(recorder: HookRecorder, rows: list[Any]) -> None:
    """Each allocation chose the lowest free address in numeric order; leases are unique and usable."""
    allocations = [
        (r.kwargs["taken"], r.kwargs["reserved"], r.result)
        for r in recorder.results("volant_allocate_ip")
        if r.plugin == "core"
    ]
    assert allocations, "volant_allocate_ip was never called"
    for taken, reserved, answer in allocations:
        assert {str(SUBNET.network_address), str(SUBNET.broadcast_address), str(HOST_IP)} <= reserved
        free = (a for a in SUBNET.hosts() if str(a) not in taken | reserved)
        assert answer == str(next(free))
    addresses = [vm.ip_address for vm in rows]
    assert None not in addresses and len(set(addresses)) == len(addresses)
    assert all(ipaddress.IPv4Address(a) in SUBNET and a != str(HOST_IP) for a in addresses)


@pytest.mark.parametrize("leases_ip", [False, True], ids=["no-ip", "leased-ip"])
def test_concurrent_creates_and_deletes(
    leases_ip: bool, host_manifest: dict[str, Any], leased_ip_mode: Any
) -> None:
    marker = host_manifest["workload"]["entrypoint"][-1]
    rng = random.Random(20240603)
    calls = [(rng.choice(["create", "create", "delete"]), rng.choice(NAMES)) for _ in range(CALLS)]
    network_mode = leased_ip_mode.mode if leases_ip else "none"
    settings = {"network_mode": network_mode, "subnet": SUBNET, "host_ip": HOST_IP}
    with host_process_daemon(plugins=[leased_ip_mode.registration], **settings) as api:
        recorder = HookRecorder.attach(api.daemon.plugins)
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201

        check_answers(run_concurrently(api, calls))
        rows = check_consistent(api, marker)
        assert rows, "the call mix should leave some VMs"
        if leases_ip:
            check_lowest_free(recorder, rows)
        else:
            assert recorder.results("volant_allocate_ip") == [] and all(vm.ip_address is None for vm in rows)

        check_answers(run_concurrently(api, [("delete", name) for name in NAMES]))
        check_all_gone(api, marker)
