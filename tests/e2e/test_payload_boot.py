"""A runtime whose payload ``volar payload build`` made boots on a real guest and serves its files.

The layer holds a web root; the manifest ``volar payload build --manifest`` pointed at the layer
starts Python's HTTP server on it. volantd appends the layer to the guest image's initramfs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from volant_core.guest import GuestArtifacts
from volant_core.testing.cli import run_volar
from volant_core.testing.daemon import RunningDaemon, running_daemon

pytestmark = pytest.mark.e2e

INDEX = "served from a payload layer\n"
ENTRYPOINT = "/usr/bin/python3.11 -m http.server 8000 --bind 127.0.0.1 --directory /srv/www"


@pytest.fixture
def api(volant_guest: GuestArtifacts) -> Iterator[RunningDaemon]:
    """A daemon booting the session's guest image."""
    with running_daemon(volant_guest) as daemon:
        yield daemon


def test_a_runtime_built_with_volar_payload_boots_and_serves_its_files(
    api: RunningDaemon, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(INDEX)
    manifest = tmp_path / "web.json"
    manifest.write_text(
        json.dumps(
            {
                "name": "paid",
                "version": "1.0.0",
                "runtime": "paid",
                "resources": {"cpu_cores": 1, "memory_mb": 256},
                "workload": {"type": "http", "base_url": "http://127.0.0.1:8000", "entrypoint": ["true"]},
                "health_check": {"endpoint": "/index.html", "timeout_ms": 60000},
            }
        )
    )
    cache = api.daemon.settings.cache_dir
    built = run_volar(
        api.url, "payload", "build", str(site), "--target", "/srv/www",
        "--manifest", str(manifest), "--entrypoint", ENTRYPOINT, "--cache-dir", str(cache),
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    document = json.loads(manifest.read_text())
    assert document["workload"]["entrypoint"] == ENTRYPOINT.split()
    assert Path(document["initramfs"]["url"]).parent == cache / "payloads"

    assert api.request("POST", "/api/v1/plugins", document).status == 201
    assert api.request("POST", "/api/v1/vms", {"name": "paid-1", "plugin": "paid"}).status == 201
    vm = api.wait_for_status("paid-1", {"running", "crashed"})
    assert vm["status"] == "running", vm
    answer = api.request("GET", "/api/v1/vms/paid-1/agent/v1/index.html")
    assert answer.status == 200 and answer.body.decode() == INDEX
