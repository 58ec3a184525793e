"""The control plane alone: ``POST /api/v1/vms`` then ``DELETE`` through volantd, on a bench-only
hypervisor that starts nothing, against the same rows written and removed straight in the store.

The client is a process of its own, as an operator's ``volar`` is: in the daemon's process it
would share the daemon's interpreter lock, and each request would wait for it as well as for the
daemon (the throughput figures of ``bench/api_server.py`` send theirs from other processes too).
It keeps one HTTP/1.1 connection for every request (as the store baseline needs none), so the
figure is not a TCP handshake and ``urllib``'s request building per request.

Besides wall-clock figures it prints the CPU time one create+delete takes in the daemon's process
and in the client's: on a loaded machine the wall clock mostly measures the wait for a core.

The backend's "VM" is a token: no process, no socket (its agent never answers, so a VM would
crash after the boot timeout; each is deleted long before). The figure is the API, the
orchestrator's bookkeeping, the store and the events. Usage:
``python bench/control_plane.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from keepalive import KeptAliveClient
from timing import report, samples

from volant_core import hookimpl
from volant_core.channels import UnixSocketChannel
from volant_core.launch import AgentChannel, HypervisorDescriptor, LaunchSpec
from volant_core.testing.daemon import running_daemon

NAME = "bench-nothing"
#: Targets of issue 11.
TARGET_RATE = 150
TARGET_P50_CREATE_MS = 5.0


class NothingInstance:
    """A VM that is nothing: alive until stopped (implements :class:`volant_core.launch.Instance`)."""

    def __init__(self, vm_dir: Path) -> None:
        self.pid = os.getpid()  # a live pid nobody will signal: stop() never kills anything
        self.accelerator = "none"
        self.agent_channel: AgentChannel = UnixSocketChannel(vm_dir / "no-agent.sock", exclusive=False)
        self.console_socket: Path | None = None
        self.console_log: Path | None = None
        self._stopped = threading.Event()

    def wait(self, timeout: float | None = None) -> int | None:
        """0 once stopped; None while it "runs"."""
        return 0 if self._stopped.wait(timeout) else None

    def alive(self) -> bool:
        """Until stopped."""
        return not self._stopped.is_set()

    def stop(self, timeout: float) -> int | None:
        """Stop at once."""
        self._stopped.set()
        return 0

    def kill(self) -> None:
        """Stop at once."""
        self._stopped.set()


class NothingLauncher:
    """Launches :class:`NothingInstance` tokens (implements :class:`volant_core.launch.Launcher`)."""

    def launch(self, spec: LaunchSpec) -> NothingInstance:
        """A token for ``spec``."""
        return NothingInstance(spec.vm_dir)

    def adopt(self, spec: LaunchSpec, pid: int) -> NothingInstance | None:
        """Nothing survives a restart."""
        return None


class NothingPlugin:
    """Registers the ``bench-nothing`` hypervisor."""

    @hookimpl
    def volant_hypervisors(self) -> list[HypervisorDescriptor]:
        """``bench-nothing``."""
        return [
            HypervisorDescriptor(
                name=NAME,
                factory=NothingLauncher,
                description="BENCH ONLY: starts nothing",
                capabilities=frozenset({"test-only"}),
            )
        ]


RUNTIME = {
    "name": "idle",
    "version": "1.0.0",
    "runtime": "idle",
    "workload": {"type": "http", "base_url": "http://127.0.0.1:9", "entrypoint": ["/bin/true"]},
}


def client(url: str, rounds: int) -> None:
    """Create and delete ``rounds`` VMs through volantd at ``url`` (after a few not counted); print
    the seconds each round and each create took, and this process's CPU seconds, as JSON.
    """
    connection = KeptAliveClient(url)
    creates: list[float] = []
    numbers = itertools.count()

    def through_the_api() -> None:
        name = f"vm-{next(numbers)}"
        started = time.perf_counter()
        status, body = connection.send("POST", "/api/v1/vms", {"name": name, "plugin": "idle"})
        creates.append(time.perf_counter() - started)
        assert status == 201, body
        assert connection.send("DELETE", f"/api/v1/vms/{name}")[0] in (200, 202, 204)

    samples(through_the_api, WARMUP, warmup=0)
    creates.clear()
    cpu_started = time.process_time()
    rounds_taken = samples(through_the_api, rounds, warmup=0)
    cpu = time.process_time() - cpu_started
    connection.close()
    print(json.dumps({"rounds": rounds_taken, "creates": creates, "cpu": cpu}))


#: Rounds the client runs before those it times (connection, caches, the pool's threads).
WARMUP = 20


def main() -> None:
    """Time create+delete both ways and print the ratio, the rate and the create p50."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--rounds", type=int, default=300, help="creates and deletes timed each way")
    options.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)  # the client process
    args = options.parse_args()
    if args.client:
        client(args.client, args.rounds)
        return
    with tempfile.TemporaryDirectory(prefix="volant-boot-") as boot:
        kernel, initramfs = Path(boot, "kernel"), Path(boot, "initramfs")
        kernel.write_bytes(b"")
        initramfs.write_bytes(b"")
        with running_daemon(
            plugins=[(NAME, NothingPlugin())], hypervisor=NAME, kernel=kernel, initramfs=initramfs
        ) as api:
            store = api.daemon.store
            assert api.request("POST", "/api/v1/plugins", RUNTIME).status == 201
            numbers = itertools.count()

            def in_the_store() -> None:
                number = next(numbers)
                store.vms.create(
                    name=f"row-{number}",
                    status="stopped",
                    runtime="idle",
                    plugin="idle",
                    hypervisor=NAME,
                    mac_address="02:00:" + ":".join(f"{byte:02x}" for byte in number.to_bytes(4)),
                    vsock_cid=100_000 + number,
                    cpu_cores=1,
                    memory_mb=128,
                    runtime_dir=Path(boot, f"row-{number}"),
                )
                store.vms.delete(f"row-{number}")

            baseline = samples(in_the_store, args.rounds)
            argv = [sys.executable, __file__, "--client", api.url, "--rounds", str(args.rounds)]
            cpu_started = time.process_time()
            measured = json.loads(subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True).stdout)
            daemon_cpu = (time.process_time() - cpu_started) / (args.rounds + WARMUP)
    report("create + delete through the API, against the store alone", baseline, measured["rounds"])
    rate = 1 / statistics.median(measured["rounds"])
    p50 = statistics.median(measured["creates"]) * 1000
    print(
        f"control plane: {rate:.0f} create+delete/s (target >= {TARGET_RATE}), "
        f"p50 create {p50:.2f} ms (target <= {TARGET_P50_CREATE_MS} ms)",
        flush=True,
    )
    # Wall time waits for the CPU on a loaded machine; the CPU time each round takes does not.
    client_cpu = measured["cpu"] / args.rounds
    print(
        f"CPU per create+delete in the daemon: {daemon_cpu * 1000:.2f} ms, at most {1 / daemon_cpu:.0f}/s "
        f"on one free core; the client's {client_cpu * 1000:.2f} ms in its own process",
        flush=True,
    )


if __name__ == "__main__":
    main()
