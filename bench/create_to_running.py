"""What volantd adds to starting a VM: ``POST /api/v1/vms`` until the VM is ``running`` (and its
``DELETE``), against starting the same agent and workload by hand and waiting for its health.

Runs kestrel and its workload as host processes (the ``test-host-process`` backend: no guest
is booted), so the difference is the control plane's own: API, database rows and events, boot
media, the launcher, the health wait. Usage: ``python bench/create_to_running.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path
from typing import Any

from timing import report, samples

from volant_core.agent_client import AgentClient
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import host_process_daemon
from volant_core.testing.kestrel import http_server_workload, kestrel_host
from volant_core.testing.waiting import eventually

#: Longest wait for one start (a safety net, not a measurement).
START_TIMEOUT = 60.0
#: Seconds between two looks at the VM's status while it starts.
POLL_INTERVAL = 0.01


def manifest(scratch: Path) -> dict[str, Any]:
    """The runtime: ``python -m http.server`` serving ``scratch``, healthy once it answers ``/``."""
    return {
        "name": "web",
        "version": "1.0.0",
        "runtime": "web",
        "workload": http_server_workload(scratch),
        "health_check": {"endpoint": "/", "timeout_ms": 30000},
    }


def start_by_hand(runtime: dict[str, Any], scratch: Path, numbers: itertools.count[int]) -> None:
    """Start kestrel on ``runtime``, wait until it answers healthy, stop it."""
    directory = scratch / f"k{next(numbers)}"
    directory.mkdir()
    with kestrel_host(runtime, directory) as kestrel:
        kestrel.wait_listening(START_TIMEOUT)
        client = AgentClient(kestrel.channel)
        client.wait_healthy(START_TIMEOUT, alive=lambda: kestrel.process.poll() is None)
        client.close()


def wait_for_running(api: RunningDaemon, name: str) -> bool:
    """Poll the VM every 10 ms (finer than the tests' poll) until it is past starting;
    whether it is running.
    """
    client = api.client()

    def settled() -> str | None:
        status = str(client.send("GET", f"/api/v1/vms/{name}").json()["status"])
        return None if status in ("pending", "starting") else status

    return eventually(settled, f"vm {name} past starting", START_TIMEOUT, POLL_INTERVAL) == "running"


def main() -> None:
    """Time both ways of starting and print the ratio."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--rounds", type=int, default=30, help="starts timed each way")
    args = options.parse_args()
    with tempfile.TemporaryDirectory(prefix="volant-bench-") as scratch, host_process_daemon() as api:
        runtime = manifest(Path(scratch))
        numbers = itertools.count()
        baseline = samples(lambda: start_by_hand(runtime, Path(scratch), numbers), args.rounds)
        assert api.request("POST", "/api/v1/plugins", runtime).status == 201
        names = (f"vm-{n}" for n in itertools.count())

        def through_the_api() -> None:
            name = next(names)
            created = api.request("POST", "/api/v1/vms", {"name": name, "plugin": "web"})
            assert created.status == 201, created.body
            assert wait_for_running(api, name)
            assert api.request("DELETE", f"/api/v1/vms/{name}").status in (200, 202, 204)

        measured = samples(through_the_api, args.rounds)
    report("create to running, then delete", baseline, measured)


if __name__ == "__main__":
    main()
