"""Real QEMU guests with a seed, one boot per seed mode: the guest mounts its seed and finds
user-data, meta-data and network-config byte for byte as the API was given them, and kestrel applied
its subset before the workload started (the workload records what it finds at its start).

vfat boot: a cloud-config (host name, write_files, bootcmd, runcmd). iso boot: a ``#!`` user-data
script and the host name from meta-data's ``local-hostname``. The manifest gives the network-config
and the VM the other two documents: the seed is their per-document merge.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core.guest import GuestArtifacts
from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.pytest_plugin import require_qemu

pytestmark = pytest.mark.e2e

#: The files the workload reads when it starts.
PATHS = (
    "/run/volant/seed/user-data",
    "/run/volant/seed/meta-data",
    "/run/volant/seed/network-config",
    "/etc/hostname",
    "/etc/volant-seeded.txt",
    "/run/bootcmd.out",
    "/run/runcmd.out",
    "/run/script.out",
)
WORKLOAD = f"""
import base64, json, os, socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
def read(path):
    try:
        with open(path, "rb") as f:
            return base64.b64encode(f.read()).decode()
    except OSError:
        return None
def mode(path):
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return None
AT_START = json.dumps({{"files": {{p: read(p) for p in {list(PATHS)!r}}}, "hostname": socket.gethostname(),
                       "written_mode": mode("/etc/volant-seeded.txt")}}).encode()
class Snapshot(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(AT_START)))
        self.end_headers()
        self.wfile.write(AT_START)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", 8000), Snapshot).serve_forever()
"""
SCRIPT = '#!/bin/sh\necho "script ran on $(hostname)" > /run/script.out\n'
ISO_META_DATA = "instance-id: iso-boot\nlocal-hostname: iso-host\n"


def seeded_manifest(network_config: str) -> dict[str, Any]:
    """A base-image runtime whose workload snapshots :data:`PATHS` at its start; its own cloud_init
    gives the network-config.
    """
    return {
        "schema_version": "1.0",
        "name": "seeded",
        "version": "1.0.0",
        "resources": {"cpu_cores": 1, "memory_mb": 256},
        "workload": {
            "type": "http",
            "base_url": "http://127.0.0.1:8000",
            "entrypoint": ["/usr/bin/python3", "-c", WORKLOAD],
        },
        "health_check": {"endpoint": "/", "timeout_ms": 60000},
        "actions": {"snapshot": {"method": "GET", "path": "/", "timeout_ms": 10000}},
        "cloud_init": {"network_config": {"content": network_config}},
    }


@pytest.fixture(scope="module")
def api(volant_guest: GuestArtifacts, network_config: str) -> Iterator[RunningDaemon]:
    """A daemon (QEMU, TCG) with the seeded runtime installed."""
    require_qemu()
    with running_daemon(volant_guest) as daemon:
        assert daemon.request("POST", "/api/v1/plugins", seeded_manifest(network_config)).status == 201
        yield daemon


def boot(api: RunningDaemon, name: str, cloud_init: dict[str, Any]) -> dict[str, Any]:
    """Boot VM ``name`` with ``cloud_init``; what its workload found at its start (files decoded) and
    its console log.
    """
    created = api.request(
        "POST", "/api/v1/vms", {"name": name, "plugin": "seeded", "config": {"cloud_init": cloud_init}}
    )
    assert created.status == 201, created.json()
    vm = api.wait_for_status(name, {"running", "crashed"}, timeout=120)
    assert vm["status"] == "running", vm
    answer = api.request("POST", f"/api/v1/vms/{name}/actions/snapshot")
    assert answer.status == 200, answer.body
    found = answer.json()
    console = (Path(vm["runtime_dir"]) / "console.log").read_text(errors="replace")
    assert api.request("DELETE", f"/api/v1/vms/{name}").status == 204
    files = {path: None if data is None else base64.b64decode(data) for path, data in found["files"].items()}
    return {**found, "files": files, "console": console}


def test_vfat_seed_read_in_the_guest_and_the_cloud_config_applied_before_the_workload(
    api: RunningDaemon, cloud_config: str, meta_data: str, network_config: str
) -> None:
    found = boot(
        api,
        "seed-vfat",
        {"seed_mode": "vfat", "user_data": {"content": cloud_config}, "meta_data": {"content": meta_data}},
    )
    files = found["files"]
    assert files["/run/volant/seed/user-data"] == cloud_config.encode()
    assert files["/run/volant/seed/meta-data"] == meta_data.encode()
    assert files["/run/volant/seed/network-config"] == network_config.encode()  # the manifest's document
    assert found["hostname"] == "seeded-host" and files["/etc/hostname"] == b"seeded-host\n"
    assert files["/etc/volant-seeded.txt"] == b"written by write_files\n"
    assert found["written_mode"] == 0o640
    assert files["/run/bootcmd.out"] == b"bootcmd ran\n"
    # runcmd ran after write_files and the host name, and before the workload started.
    assert files["/run/runcmd.out"] == b"written by write_files\nruncmd saw host seeded-host\n"
    # Network mode none: no eth0, and the console says the network-config was not applied.
    assert "network-config for eth0 not applied: the VM has no eth0" in found["console"]


def test_iso_seed_read_in_the_guest_and_the_user_data_script_run_before_the_workload(
    api: RunningDaemon, network_config: str
) -> None:
    found = boot(
        api,
        "seed-iso",
        {"seed_mode": "iso", "user_data": {"content": SCRIPT}, "meta_data": {"content": ISO_META_DATA}},
    )
    files = found["files"]
    assert files["/run/volant/seed/user-data"] == SCRIPT.encode()
    assert files["/run/volant/seed/meta-data"] == ISO_META_DATA.encode()
    assert files["/run/volant/seed/network-config"] == network_config.encode()
    assert found["hostname"] == "iso-host"  # meta-data's local-hostname
    assert files["/run/script.out"] == b"script ran on iso-host\n"
    assert files["/run/runcmd.out"] is None  # a fresh guest: nothing left from the other boot
