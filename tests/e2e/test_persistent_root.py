"""A persistent root on real guests: the root's writes survive stop and start, in a qcow2 overlay of
the VM's own over the one cached image (ADR 0037).

The image is an ext4 file system holding busybox and a web root (``make_rootfs``). At each boot the
workload appends a line to ``/www/boots.txt`` in its root and serves ``/www``: the file's lines count
the boots whose writes the root kept. Three guest boots in all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core.guest import GuestArtifacts
from volant_core.images import open_regular, read_qcow2_header
from volant_core.testing.daemon import RunningDaemon, running_daemon

pytestmark = pytest.mark.e2e

BOOT_SCRIPT = "echo boot >> /www/boots.txt; exec /bin/busybox httpd -f -p 127.0.0.1:8000 -h /www"


def sha256(path: Path) -> str:
    """The SHA-256 of a file, in hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def rootfs(make_rootfs: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The root filesystem image: busybox and ``/www/index.html``."""
    return make_rootfs(tmp_path_factory.mktemp("persistent"), {"/www/index.html": "index\n"})


@pytest.fixture(scope="module")
def api(volant_guest: GuestArtifacts, rootfs: Path) -> Iterator[RunningDaemon]:
    """A daemon with the runtime ``kept`` installed: ``rootfs``, verified by checksum, persistent."""
    runtime: dict[str, Any] = {
        "name": "kept",
        "version": "1.0.0",
        "resources": {"cpu_cores": 1, "memory_mb": 256},
        "rootfs": {"url": str(rootfs), "checksum": f"sha256:{sha256(rootfs)}", "persistent": True},
        "workload": {
            "type": "http",
            "base_url": "http://127.0.0.1:8000",
            "entrypoint": ["/bin/busybox", "sh", "-c", BOOT_SCRIPT],
            "workdir": "/www",
        },
        "health_check": {"endpoint": "/index.html", "timeout_ms": 60000},
    }
    with running_daemon(volant_guest, artifact_dirs=(rootfs.parent,)) as daemon:
        assert daemon.request("POST", "/api/v1/plugins", runtime).status == 201
        yield daemon


def boot(api: RunningDaemon, name: str) -> dict[str, Any]:
    """Create VM ``name`` of ``kept`` and wait until it runs."""
    assert api.request("POST", "/api/v1/vms", {"name": name, "plugin": "kept"}).status == 201
    vm = api.wait_for_status(name, {"running", "crashed"})
    assert vm["status"] == "running", vm
    return vm


def boots(api: RunningDaemon, name: str) -> str:
    """``/www/boots.txt`` of VM ``name``'s root, through the agent proxy."""
    answer = api.request("GET", f"/api/v1/vms/{name}/agent/v1/boots.txt")
    assert answer.status == 200, answer.body
    return answer.body.decode()


def backing_file(overlay: Path) -> tuple[str | None, str | None]:
    """``(backing file, its format)`` as the qcow2 header of ``overlay`` names them."""
    with open_regular(overlay, field="overlay") as stream:
        header = read_qcow2_header(stream, field="overlay")
    assert header is not None, f"{overlay} is not a qcow2 image"
    return header.backing_file, header.backing_format


def test_the_root_keeps_its_writes_across_a_restart_over_one_shared_unchanged_image(
    api: RunningDaemon, rootfs: Path
) -> None:
    digest = sha256(rootfs)
    first = boot(api, "kept-1")
    assert boots(api, "kept-1") == "boot\n"

    assert api.request("POST", "/api/v1/vms/kept-1/stop").json()["status"] == "stopped"
    assert api.request("POST", "/api/v1/vms/kept-1/start").status == 200
    assert api.wait_for_status("kept-1", {"running", "crashed"})["status"] == "running"
    assert boots(api, "kept-1") == "boot\nboot\n"  # the first boot's write survived the restart

    second = boot(api, "kept-2")
    assert boots(api, "kept-2") == "boot\n"  # a root of its own: the other VM's writes are not in it
    overlays = [Path(vm["runtime_dir"]) / "root" / "overlay.qcow2" for vm in (first, second)]
    base, base_format = backing_file(overlays[0])
    assert base is not None and base_format == "raw"
    assert backing_file(overlays[1]) == (base, "raw")  # one base file for both VMs
    assert Path(base).name == digest and Path(base) != rootfs  # the verified cache entry
    assert sha256(Path(base)) == digest and sha256(rootfs) == digest  # no guest wrote to either

    for vm, overlay in zip(("kept-1", "kept-2"), overlays, strict=True):
        assert api.request("DELETE", f"/api/v1/vms/{vm}").status in (200, 204)
        assert not overlay.exists()
    assert sha256(Path(base)) == digest
