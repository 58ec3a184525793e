"""The control plane alone: ``POST /api/v1/vms`` then ``DELETE`` through volantd, on a bench-only
hypervisor that starts nothing, against the same rows written and removed straight in the store.

Besides wall-clock figures it prints the CPU time one create+delete takes in this process
(daemon and client), and the client's share of it (its own thread's CPU time): on a loaded machine
the wall clock mostly measures the wait for a core.

The client keeps one HTTP/1.1 connection for every request (as the store baseline needs none),
so the figure is not a TCP handshake and ``urllib``'s request building per request.

The backend's "VM" is a token: no process, no socket (its agent never answers, so a VM would
crash after the boot timeout; each is deleted long before). The figure is the API, the
orchestrator's bookkeeping, the store and the events. Usage:
``python bench/control_plane.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
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


def main() -> None:
    """Time create+delete both ways and print the ratio, the rate and the create p50."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--rounds", type=int, default=300, help="creates and deletes timed each way")
    args = options.parse_args()
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

            creates: list[float] = []
            client = KeptAliveClient(api.url)

            def through_the_api() -> None:
                name = f"vm-{next(numbers)}"
                started = time.perf_counter()
                status, body = client.send("POST", "/api/v1/vms", {"name": name, "plugin": "idle"})
                creates.append(time.perf_counter() - started)
                assert status == 201, body
                assert client.send("DELETE", f"/api/v1/vms/{name}")[0] in (200, 202, 204)

            baseline = samples(in_the_store, args.rounds)
            cpu_started, client_started = time.process_time(), time.thread_time()
            measured = samples(through_the_api, args.rounds, warmup=0)
            cpu = (time.process_time() - cpu_started) / args.rounds
            client_cpu = (time.thread_time() - client_started) / args.rounds  # the client is this thread
            client.close()
    report("create + delete through the API, against the store alone", baseline, measured)
    rate = 1 / statistics.median(measured)
    p50 = statistics.median(creates) * 1000
    print(
        f"control plane: {rate:.0f} create+delete/s (target >= {TARGET_RATE}), "
        f"p50 create {p50:.2f} ms (target <= {TARGET_P50_CREATE_MS} ms)",
        flush=True,
    )
    # Wall time waits for the CPU on a loaded machine; the CPU time each round takes does not.
    print(
        f"CPU per create+delete (daemon and client, this process): {cpu * 1000:.2f} ms, "
        f"at most {1 / cpu:.0f}/s on one free core; the client's share {client_cpu * 1000:.2f} ms, "
        f"the daemon's {(cpu - client_cpu) * 1000:.2f} ms",
        flush=True,
    )


if __name__ == "__main__":
    main()
