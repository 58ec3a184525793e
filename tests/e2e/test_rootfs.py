"""A runtime booted from a root filesystem image, with a data disk, on a real guest.

The image is an ext4 file system made here (``mkfs.ext4 -d``) holding nothing but busybox and a
web root: no Python, no kestrel. The guest boots the built-in image as always; kestrel mounts the
image read-only under a RAM overlay and runs the workload (busybox httpd) inside it.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core.agent.constants import BUSYBOX
from volant_core.guest import GuestArtifacts
from volant_core.guest.cpio import initramfs_files
from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.pytest_plugin import require_qemu, require_tool

pytestmark = pytest.mark.e2e

INDEX = "served from the root filesystem\n"
#: The data disk's first bytes once the first boot wrote them.
DISK_MARK = b"written-by-boot-1"
#: What the workload does at each boot, inside the root filesystem (cwd: its workdir, /www):
#: note what the data disk held, write a file in the overlay and the mark on the data disk, serve /www.
BOOT_SCRIPT = (
    "/bin/busybox head -c 17 /dev/vdb > disk-before.txt; "
    "echo written > state.txt; "
    f"printf {DISK_MARK.decode()} | /bin/busybox dd of=/dev/vdb conv=notrunc 2>/dev/null; "
    "exec /bin/busybox httpd -f -p 127.0.0.1:8000 -h /www"
)


def build_rootfs(directory: Path, busybox: bytes) -> Path:
    """An ext4 image holding ``/bin/busybox`` and ``/www/index.html``."""
    tree = directory / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "www").mkdir()
    (tree / "bin" / "busybox").write_bytes(busybox)
    (tree / "bin" / "busybox").chmod(0o755)
    (tree / "www" / "index.html").write_text(INDEX)
    image = directory / "rootfs.ext4"
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-L", "volroot", "-d", str(tree), str(image), "16M"],
        check=True,
        capture_output=True,
    )
    return image


def digest(path: Path) -> str:
    """The SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rooted_manifest(rootfs: Path, data: Path, *, checksum: str | None = None) -> dict[str, Any]:
    """A runtime booting ``rootfs`` with the writable disk ``data``."""
    return {
        "schema_version": "1.0",
        "name": "rooted",
        "version": "1.0.0",
        "runtime": "rooted",
        "resources": {"cpu_cores": 1, "memory_mb": 256},
        "rootfs": {"url": str(rootfs), **({"checksum": checksum} if checksum else {})},
        "disks": [{"name": "data", "source": str(data)}],
        "workload": {
            "type": "http",
            "base_url": "http://127.0.0.1:8000",
            "entrypoint": ["/bin/busybox", "sh", "-c", BOOT_SCRIPT],
            "workdir": "/www",
        },
        "health_check": {"endpoint": "/index.html", "timeout_ms": 60000},
    }


@pytest.fixture(scope="module")
def images(volant_guest: GuestArtifacts, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(rootfs, data)``: the root filesystem image and a blank 1 MiB data disk."""
    require_qemu()
    require_tool("mkfs.ext4", "e2fsprogs")
    directory = tmp_path_factory.mktemp("rootfs")
    busybox = initramfs_files(volant_guest.initramfs.read_bytes())[BUSYBOX]
    data = directory / "data.img"
    data.write_bytes(bytes(1 << 20))
    return build_rootfs(directory, busybox), data


@pytest.fixture(scope="module")
def api(volant_guest: GuestArtifacts, images: tuple[Path, Path]) -> Iterator[RunningDaemon]:
    """A daemon with the runtime ``rooted`` installed (reading images from their directory)."""
    rootfs, data = images
    with running_daemon(volant_guest, artifact_dirs=(rootfs.parent,)) as daemon:
        assert daemon.request("POST", "/api/v1/plugins", rooted_manifest(rootfs, data)).status == 201
        yield daemon


def fetch(api: RunningDaemon, vm: str, path: str) -> str:
    """A file the workload serves, through the agent proxy."""
    answer = api.request("GET", f"/api/v1/vms/{vm}/agent/v1/{path}")
    assert answer.status == 200, answer.body
    return answer.body.decode()


def test_the_workload_runs_inside_the_root_filesystem_and_writes_to_ram(
    api: RunningDaemon, images: tuple[Path, Path]
) -> None:
    rootfs, data = images
    rootfs_before, data_before = digest(rootfs), digest(data)
    assert api.request("POST", "/api/v1/vms", {"name": "rooted-1", "plugin": "rooted"}).status == 201
    vm = api.wait_for_status("rooted-1", {"running", "crashed"})
    assert vm["status"] == "running", vm
    assert fetch(api, "rooted-1", "index.html") == INDEX  # a file of the image, by its httpd
    assert fetch(api, "rooted-1", "state.txt") == "written\n"  # written in its workdir, in the overlay
    assert fetch(api, "rooted-1", "disk-before.txt") == "\0" * len(DISK_MARK)  # a blank data disk

    assert api.request("POST", "/api/v1/vms/rooted-1/stop").json()["status"] == "stopped"
    assert digest(rootfs) == rootfs_before  # attached read-only: the guest's writes stayed in RAM
    assert digest(data) == data_before  # the VM wrote its own copy of the data disk
    own_copy = Path(vm["runtime_dir"]) / "disks" / "data.raw"
    assert own_copy.read_bytes().startswith(DISK_MARK)

    assert api.request("POST", "/api/v1/vms/rooted-1/start").status == 200
    assert api.wait_for_status("rooted-1", {"running", "crashed"})["status"] == "running"
    assert fetch(api, "rooted-1", "disk-before.txt") == DISK_MARK.decode()  # the copy outlived the boot

    assert api.request("DELETE", "/api/v1/vms/rooted-1").status in (200, 204)
    assert not own_copy.exists()


def test_a_root_filesystem_that_does_not_match_its_checksum_is_refused(
    api: RunningDaemon, images: tuple[Path, Path]
) -> None:
    rootfs, data = images
    runtime = rooted_manifest(rootfs, data, checksum="sha256:" + "0" * 64)
    runtime["name"] = runtime["runtime"] = "tampered"
    assert api.request("POST", "/api/v1/plugins", runtime).status == 201
    refused = api.request("POST", "/api/v1/vms", {"name": "tampered-1", "plugin": "tampered"})
    assert refused.status == 422
    error = refused.json()["error"]
    assert "checksum mismatch" in error["message"] and error["details"][0]["field"] == "manifest.rootfs.url"
    assert api.request("GET", "/api/v1/vms/tampered-1").status == 404


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no file system", "root filesystem /dev/vda cannot be used: no file system type mounts"),
        ("workdir missing", "workload.workdir /nowhere does not exist in the root filesystem"),
    ],
)
def test_a_root_the_workload_cannot_use_fails_the_boot_with_the_reason(
    api: RunningDaemon, images: tuple[Path, Path], case: str, reason: str
) -> None:
    rootfs, data = images
    if case == "no file system":
        rootfs = rootfs.parent / "blank.img"
        rootfs.write_bytes(bytes(1 << 20))
    runtime = rooted_manifest(rootfs, data)
    if case == "workdir missing":
        runtime["workload"]["workdir"] = "/nowhere"
    name = case.replace(" ", "-")
    runtime["name"] = runtime["runtime"] = name
    assert api.request("POST", "/api/v1/plugins", runtime).status == 201
    assert api.request("POST", "/api/v1/vms", {"name": name, "plugin": name}).status == 201
    vm = api.wait_for_status(name, {"running", "crashed"})
    assert vm["status"] == "crashed"
    assert reason in vm["status_reason"]
