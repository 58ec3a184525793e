"""Fixtures of the end-to-end tests (real QEMU guests)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from volant_core.agent.constants import BUSYBOX
from volant_core.guest import GuestArtifacts
from volant_core.guest.cpio import initramfs_files
from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.pytest_plugin import require_qemu, require_tool


@pytest.fixture(scope="module")
def hello_web(volant_guest: GuestArtifacts, hello_manifest_module: dict[str, Any]) -> Iterator[RunningDaemon]:
    """One daemon and one running guest, ``web``, of examples/hello-http for a whole test module."""
    require_qemu()
    with running_daemon(volant_guest) as daemon:
        daemon.request("POST", "/api/v1/plugins", hello_manifest_module)
        assert daemon.request("POST", "/api/v1/vms", {"name": "web", "plugin": "hello-http"}).status == 201
        assert daemon.wait_for_status("web", {"running", "crashed"})["status"] == "running"
        yield daemon


@pytest.fixture(scope="session")
def make_rootfs(volant_guest: GuestArtifacts) -> Callable[..., Path]:
    """``make_rootfs(directory, files, links={})``: a 16 MiB ext4 image ``directory/rootfs.ext4``
    (made with ``mkfs.ext4 -d``) holding the guest image's ``/bin/busybox``, ``files`` (path in the
    image → text) and symbolic ``links`` (path → target), and nothing else: no Python, no kestrel.
    Skips without QEMU or e2fsprogs."""
    require_qemu()
    require_tool("mkfs.ext4", "e2fsprogs")
    busybox = initramfs_files(volant_guest.initramfs.read_bytes())[BUSYBOX]

    def make(directory: Path, files: Mapping[str, str], links: Mapping[str, str] | None = None) -> Path:
        tree = directory / "tree"
        (tree / "bin").mkdir(parents=True)
        (tree / "bin" / "busybox").write_bytes(busybox)
        (tree / "bin" / "busybox").chmod(0o755)
        for name, text in files.items():
            target = tree / name.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        for name, pointed in (links or {}).items():
            link = tree / name.lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(pointed)
        image = directory / "rootfs.ext4"
        subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-L", "volroot", "-d", str(tree), str(image), "16M"],
            check=True,
            capture_output=True,
        )
        return image

    return make
