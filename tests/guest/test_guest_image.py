"""The built guest artifacts: cached by input hash, and what the image is made of."""

from __future__ import annotations

import gzip
import shutil
import subprocess

import pytest

from volant_core.guest import GuestArtifacts, ensure_guest

ELF_MAGIC = b"\x7fELF"


def test_second_call_is_cached(buildable_guest: GuestArtifacts) -> None:
    before = (buildable_guest.kernel.stat().st_mtime_ns, buildable_guest.initramfs.stat().st_mtime_ns)
    said: list[str] = []
    again = ensure_guest(buildable_guest.kernel.parent.parent, log=said.append)
    assert said == [], f"the cached image was built again: {said}"
    assert again == buildable_guest
    assert (again.kernel.stat().st_mtime_ns, again.initramfs.stat().st_mtime_ns) == before


def test_kernel_is_an_uncompressed_elf(buildable_guest: GuestArtifacts) -> None:
    with buildable_guest.kernel.open("rb") as kernel:
        assert kernel.read(4) == ELF_MAGIC


@pytest.mark.skipif(
    shutil.which("busybox") is None, reason="busybox is not installed (apt-get install busybox-static)"
)
def test_initramfs_holds_init_python_modules_and_busybox(buildable_guest: GuestArtifacts) -> None:
    archive = gzip.decompress(buildable_guest.initramfs.read_bytes())
    listing = subprocess.run(["busybox", "cpio", "-t"], input=archive, capture_output=True, check=True)
    names = set(listing.stdout.decode().split())
    expected = {"init", "dev/console", "dev/urandom", "usr/bin/python3.11", "usr/bin/busybox", "usr/bin/sh"}
    expected |= {"usr/lib/python3.11/os.pyc", "usr/lib/kestrel/kestrel/__main__.pyc"}
    assert expected <= names
    modules = {name.rsplit("/", 1)[-1] for name in names if name.endswith(".ko")}
    wanted = {"virtio_pci.ko", "virtio_console.ko", "virtio-rng.ko", "virtio_blk.ko", "virtio_net.ko"}
    assert wanted | {"vfat.ko", "isofs.ko", "button.ko", "evdev.ko"} <= modules
    assert not any(name.endswith(".py") for name in names)
