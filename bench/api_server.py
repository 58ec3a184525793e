"""What volantd's HTTP server sustains: ``/healthz`` and ``GET /api/v1/vms`` (1,000 VMs in the store)
at 1 and 8 concurrent keep-alive clients, against a bare Falcon ASGI app under the same server
library (uvicorn) in the same run; then the daemon's memory with 1,000 VMs and 10 event streams
open, against the same daemon idle and empty.

Clients are separate processes (one keep-alive connection each), so they do not share the
server's interpreter lock. Usage: ``python bench/api_server.py [--seconds S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import falcon
import falcon.asgi
import uvicorn

from volant_core.manifest import parse_manifest
from volant_core.orchestrator.vmconfig import VMConfig
from volant_core.store import open_store
from volant_core.testing.daemon import running_daemon, volantd_process
from volant_core.testing.waiting import eventually, free_port

#: VMs seeded into the store.
VMS = 1000
#: Event-stream clients kept open while the daemon's memory is read.
SSE_CLIENTS = 10
#: The runtime manifest every seeded VM was created from.
MANIFEST = {
    "name": "bench",
    "version": "1.0.0",
    "runtime": "bench",
    "workload": {"type": "http", "base_url": "http://127.0.0.1:8000", "entrypoint": ["/bin/true"]},
}
#: Targets of issue 11, printed beside the figures.
TARGET_VMS_SHARE = 0.30
TARGET_HEALTHZ_SHARE = 0.50
TARGET_RSS_MIB = 80


def client(url: str, path: str, seconds: float) -> None:
    """Send ``GET path`` on one keep-alive connection for ``seconds``; print the answers counted."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        connection.request("GET", path)
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 200, answer.status
        count += 1
    print(count)


def throughput(url: str, path: str, clients: int, seconds: float) -> float:
    """Answers per second of ``clients`` client processes hammering ``url + path``."""
    argv = [sys.executable, __file__, "--client", url, path, str(seconds)]
    processes = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(clients)]
    counts = [int(process.communicate()[0]) for process in processes]
    return sum(counts) / seconds


class _Health:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"status": "ok"}


@contextlib.contextmanager
def bare_falcon() -> Iterator[str]:
    """A Falcon ASGI app with only ``/healthz``, under uvicorn with its defaults, in a thread."""
    app = falcon.asgi.App()
    app.add_route("/healthz", _Health())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_config=None, access_log=False, lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    eventually(lambda: server.started, "the bare app serving")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def seed(db_path: Path, runtime_dir: Path, count: int) -> None:
    """``count`` stopped VMs, each with its configuration, written straight into the store at
    ``db_path`` (nothing booted). A VM without a configuration would be left out of the list.
    """
    config = VMConfig.from_manifest("bench", parse_manifest(MANIFEST)).to_json()
    store = open_store(db_path)
    try:
        for number in range(count):
            record = store.vms.create(
                name=f"bench-{number}",
                status="stopped",
                runtime="bench",
                plugin="bench",
                hypervisor="bench",
                mac_address=f"02:00:00:00:{number >> 8:02x}:{number & 0xFF:02x}",
                vsock_cid=1000 + number,
                cpu_cores=1,
                memory_mb=128,
                runtime_dir=runtime_dir / f"bench-{number}",
            )
            store.configs.put(record.id, config)
    finally:
        store.close()


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid``, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def bench_throughput(seconds: float, rounds: int) -> None:
    """/healthz against the bare app, and the VM list against /healthz; rounds alternate the two
    servers so that load from elsewhere on the machine hits both alike (median ratio printed).
    """
    with bare_falcon() as bare, running_daemon() as api:
        seed(api.daemon.settings.db_path, api.daemon.settings.runtime_dir, VMS)
        for clients in (1, 8):
            base, health, vms = [], [], []
            for _ in range(rounds):
                base.append(throughput(bare, "/healthz", clients, seconds))
                health.append(throughput(api.url, "/healthz", clients, seconds))
                vms.append(throughput(api.url, "/api/v1/vms", clients, seconds))
            share = statistics.median(h / b for h, b in zip(health, base, strict=True))
            print(
                f"/healthz, {clients} client(s): {statistics.median(health):.0f}/s against a bare "
                f"Falcon app's {statistics.median(base):.0f}/s: ratio {share:.2f} "
                f"(target >= {TARGET_HEALTHZ_SHARE})",
                flush=True,
            )
            share = statistics.median(v / h for v, h in zip(vms, health, strict=True))
            print(
                f"GET /api/v1/vms ({VMS} VMs), {clients} client(s): {statistics.median(vms):.0f}/s "
                f"against /healthz's {statistics.median(health):.0f}/s: ratio {share:.2f} "
                f"(target >= {TARGET_VMS_SHARE})",
                flush=True,
            )


def bench_memory() -> None:
    """volantd's RSS with the VMs and event streams, against the same daemon idle and empty."""
    with tempfile.TemporaryDirectory(prefix="volant-bench-") as scratch:
        state = Path(scratch)
        env = {**os.environ, "VOLANT_ACCESS_LOG": "true"}
        with volantd_process(state, free_port(), env=env) as daemon:
            pid = daemon.process.pid
            idle = rss_mib(pid)
            seed(state / "state.db", state / "run", VMS)
            host, port = daemon.url.removeprefix("http://").split(":")
            streams = []
            for _ in range(SSE_CLIENTS):
                sock = socket.create_connection((host, int(port)), timeout=30)
                sock.sendall(b"GET /api/v1/events/vms HTTP/1.1\r\nHost: localhost\r\n\r\n")
                assert b" 200 " in sock.recv(4096)
                streams.append(sock)
            assert daemon.client().send("GET", "/api/v1/vms").status == 200
            loaded = rss_mib(pid)
            for sock in streams:
                sock.close()
        print(
            f"volantd RSS with {VMS} VMs and {SSE_CLIENTS} SSE clients: {loaded:.1f} MiB against "
            f"{idle:.1f} MiB idle and empty: ratio {loaded / idle:.2f} (target <= {TARGET_RSS_MIB} MiB)",
            flush=True,
        )


def main() -> None:
    """Run every comparison and print one line each."""
    if len(sys.argv) == 5 and sys.argv[1] == "--client":
        client(sys.argv[2], sys.argv[3], float(sys.argv[4]))
        return
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--seconds", type=float, default=2.0, help="length of each throughput run")
    options.add_argument("--rounds", type=int, default=3, help="throughput runs per comparison")
    args = options.parse_args()
    logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))  # the access log is written
    bench_throughput(args.seconds, args.rounds)
    bench_memory()


if __name__ == "__main__":
    main()
