"""What volantd's agent proxy costs: a request and a download through the API
(``/api/v1/vms/{name}/agent/...``) against the same request sent straight to kestrel's socket.

Both sides keep their connection (the daemon's agent client reuses its own; the API side uses
one kept-alive HTTP/1.1 connection), and both read the download as it streams, chunk by chunk,
as the proxy relays it: :meth:`~volant_core.agent_client.AgentClient.request` reads whole answers
only up to ``VOLANT_AGENT_MAX_ANSWER`` (16 MiB by default), which the download may exceed.

Runs kestrel and its workload as host processes (the ``test-host-process`` backend: no guest
is booted), so the numbers are the control plane's own: HTTP server, routing, relay.
Usage: ``python bench/agent_proxy.py [--rounds N] [--mib M]``.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time

from keepalive import KeptAliveClient
from timing import report, samples

from volant_core.testing.hostvm import host_process_daemon
from volant_core.testing.waiting import free_port

#: The workload: ``GET /blob/<n>`` answers ``n`` bytes (with their length), ``/`` answers ``ok``.
WORKLOAD = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    PIECE = bytes(1 << 20)

    class Blob(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            size = int(self.path.rpartition("/")[2] or 2) if self.path.startswith("/blob/") else 2
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if not self.path.startswith("/blob/"):
                self.wfile.write(b"ok")
                return
            while size:
                piece = PIECE[: min(size, len(PIECE))]
                self.wfile.write(piece)
                size -= len(piece)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Blob).serve_forever()
    """
)


def manifest(port: int) -> dict[str, object]:
    """A runtime whose workload is :data:`WORKLOAD` on ``port``."""
    return {
        "name": "blob",
        "version": "1.0.0",
        "runtime": "blob",
        "workload": {
            "type": "http",
            "base_url": f"http://127.0.0.1:{port}",
            "entrypoint": [sys.executable, "-c", WORKLOAD, str(port)],
        },
        "health_check": {"endpoint": "/", "timeout_ms": 30000},
    }


def main() -> None:
    """Boot one host-process VM, then time each request both ways and print the ratios."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--rounds", type=int, default=200, help="requests timed per comparison")
    options.add_argument("--mib", type=int, default=64, help="size of the download, in MiB")
    args = options.parse_args()
    size = args.mib << 20
    with host_process_daemon() as api:
        assert api.request("POST", "/api/v1/plugins", manifest(free_port())).status == 201
        assert api.request("POST", "/api/v1/vms", {"name": "bench", "plugin": "blob"}).status == 201
        assert api.wait_for_status("bench", {"running", "crashed"})["status"] == "running"
        agent = api.daemon.orchestrator.agent("bench")

        client = KeptAliveClient(api.url)

        def direct(path: str) -> None:
            with agent.open("GET", path) as answer:
                for _chunk in answer:
                    pass
            assert answer.status == 200, answer.status

        def proxied(path: str) -> None:
            status, _ = client.send("GET", f"/api/v1/vms/bench/agent{path}")
            assert status == 200, status

        small, big = "/v1/ping", f"/v1/blob/{size}"
        cpu = time.process_time()
        straight = samples(lambda: direct(small), args.rounds)
        cpu_direct, cpu = (time.process_time() - cpu) / (args.rounds + 1), time.process_time()
        relayed = samples(lambda: proxied(small), args.rounds)
        cpu_proxied = (time.process_time() - cpu) / (args.rounds + 1)
        report("small request", straight, relayed)
        # On a loaded machine the wall clock mostly measures the wait for a core; CPU time does not.
        print(
            f"small request, CPU in this process (client and daemon; kestrel runs apart): "
            f"{cpu_proxied * 1000:.2f} ms through the API against {cpu_direct * 1000:.2f} ms direct, "
            f"{(cpu_proxied - cpu_direct) * 1000:+.2f} ms",
            flush=True,
        )
        downloads = max(3, args.rounds // 20)
        report(
            f"{args.mib} MiB download",
            samples(lambda: direct(big), downloads),
            samples(lambda: proxied(big), downloads),
            unit_bytes=size,
        )
        client.close()


if __name__ == "__main__":
    main()
