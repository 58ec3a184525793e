"""Fault suite: 50 concurrent clients mixing every operation against one volantd: no 5xx answer.

Each client is a thread with its own ApiClient over real sockets; between them they create, get,
list, reconfigure, stop, start and delete VMs over a few shared names and scale a deployment up and
down. Contention may refuse a call (404 for a VM deleted meanwhile, 409 for one in the wrong state);
it may never fail one. Afterwards the VMs settle and the rows, processes, directories and IP leases
agree. The VMs run on the TEST backend ``test-host-process`` (real kestrel processes, no guests).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from volant_core.cli.client import ApiError
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.faults import inconsistencies, settled_vms
from volant_core.testing.hostvm import host_process_daemon
from volant_core.testing.leased_ip import LeasedIpMode
from volant_core.testing.waiting import eventually

pytestmark = pytest.mark.faults

CLIENTS = 50
CALLS_PER_CLIENT = 8
NAMES = [f"c-{i}" for i in range(8)]
#: One outcome: which client, the call (method and path) and the answer's status and body.
Outcome = tuple[int, str, int, bytes]


def pick_call(rng: random.Random) -> tuple[str, str, Any]:
    """One call, ``(method, path, body)``, of every operation a client may make, chosen by ``rng``."""
    name = rng.choice(NAMES)
    calls: list[tuple[str, str, Any]] = [
        ("POST", "/api/v1/vms", {"name": name, "plugin": "hello-host"}),
        ("GET", f"/api/v1/vms/{name}", None),
        ("GET", "/api/v1/vms", None),
        ("PATCH", f"/api/v1/vms/{name}/config", {"kernel_cmdline": f"rev={rng.randrange(99)}"}),
        ("POST", f"/api/v1/vms/{name}/stop", None),
        ("POST", f"/api/v1/vms/{name}/start", None),
        ("POST", f"/api/v1/vms/{name}/restart", None),
        ("DELETE", f"/api/v1/vms/{name}", None),
        ("GET", f"/api/v1/vms/{name}/config/history", None),
        ("PATCH", "/api/v1/deployments/web", {"replicas": rng.randrange(4)}),
        ("GET", "/api/v1/deployments/web", None),
        ("GET", "/api/v1/system/summary", None),
    ]
    return rng.choice(calls)


def client_run(api: RunningDaemon, number: int, start: threading.Barrier, outcomes: list[Outcome]) -> None:
    """One client: wait for all, then :data:`CALLS_PER_CLIENT` random calls (seeded by ``number``)."""
    rng = random.Random(number)
    client = api.client(timeout=120)
    start.wait()
    for _ in range(CALLS_PER_CLIENT):
        method, path, body = pick_call(rng)
        try:
            reply = client.send(method, path, body)
            outcomes.append((number, f"{method} {path}", reply.status, reply.body[:300]))
        except ApiError as err:  # no answer at all is as bad as a 5xx
            outcomes.append((number, f"{method} {path}", 599, str(err).encode()))


@pytest.fixture
def api(host_manifest: dict[str, Any]) -> Iterator[RunningDaemon]:
    """A host-process daemon whose VMs lease addresses, with ``hello-host`` and a deployment ``web``."""
    mode = LeasedIpMode()
    with host_process_daemon(
        plugins=[mode.registration], network_mode=mode.mode, stop_timeout=5, reconcile_interval=0.5
    ) as daemon:
        assert daemon.request("POST", "/api/v1/plugins", host_manifest).status == 201
        deployment = {"name": "web", "replicas": 1, "config": {"plugin": "hello-host"}}
        assert daemon.request("POST", "/api/v1/deployments", deployment).status == 201
        yield daemon
        daemon.request("DELETE", "/api/v1/deployments/web")


def test_fifty_clients_mixing_every_operation_get_no_5xx(api: RunningDaemon) -> None:
    outcomes: list[Outcome] = []
    start = threading.Barrier(CLIENTS)
    clients = [
        threading.Thread(target=client_run, args=(api, number, start, outcomes), daemon=True)
        for number in range(CLIENTS)
    ]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(300)
    assert not any(thread.is_alive() for thread in clients), "a client is still waiting for an answer"
    assert len(outcomes) == CLIENTS * CALLS_PER_CLIENT
    failures = [outcome for outcome in outcomes if outcome[2] >= 500]
    assert failures == [], "\n".join(
        f"client {n}: {call} -> {status} {body!r}" for n, call, status, body in failures
    )
    assert {status for *_, status, _ in outcomes} & {200, 201, 204}, "no call succeeded at all"

    client = api.client()
    assert client.send("PATCH", "/api/v1/deployments/web", {"replicas": 2}).status == 200
    eventually(
        lambda: (
            [vm["status"] for vm in settled_vms(client) if vm["name"].startswith("web-")] == ["running"] * 2
        ),
        "the deployment to settle at 2 running members",
        timeout=60,
    )
    assert inconsistencies(settled_vms(client), api.state_dir) == []
