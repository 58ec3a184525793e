"""A VM's own writable images (ADR 0037): a persistent root and writable disks are qcow2 overlays
over the verified, cached image (made with the real ``qemu-img``, written and read back with the
real ``qemu-io``), or full copies when the source has no checksum; nothing a VMM left in the VM's
directory makes the daemon write elsewhere or attach another file. No hypervisor is started here.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from volant_core import builtins
from volant_core.descriptors import BootSourceDescriptor
from volant_core.errors import ConflictError, ValidationError
from volant_core.images import open_regular, read_qcow2_header
from volant_core.launch import BackingImage, DiskRole, DiskSpec
from volant_core.manifest import parse_manifest
from volant_core.orchestrator.bootmedia import BootMedia
from volant_core.registry import Registry
from volant_core.settings import Settings, load_settings
from volant_core.testing.qcow2 import write_qcow2

ROOT_FIELD = "manifest.rootfs.url"


@pytest.fixture(autouse=True)
def _qemu_utils() -> None:
    if shutil.which("qemu-img") is None or shutil.which("qemu-io") is None:
        pytest.fail("qemu-img and qemu-io are missing: install qemu-utils (scripts/bootstrap.sh does)")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A daemon's settings reading images from ``tmp_path/images`` (placeholder base images)."""
    (tmp_path / "images").mkdir()
    kernel, initramfs = tmp_path / "vmlinux", tmp_path / "initramfs.img"
    kernel.write_bytes(b"kernel")
    initramfs.write_bytes(b"base")
    return load_settings(
        {},
        state_dir=tmp_path / "state",
        kernel=kernel,
        initramfs=initramfs,
        artifact_dirs=(tmp_path / "images",),
    )


@pytest.fixture
def media(settings: Settings) -> BootMedia:
    """Boot media of ``settings`` with the built-in boot sources (nothing boots)."""
    sources: Registry[BootSourceDescriptor] = Registry("boot source")
    for source in builtins.volant_boot_sources():
        sources.add(source.name, source, "volant_core")
    return BootMedia(settings, sources, log=lambda _line: None)


def raw_image(path: Path, fill: bytes = b"i") -> Path:
    """A 1 MiB raw image of ``fill`` bytes."""
    path.write_bytes(fill * (1 << 20))
    return path


def checksum(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def runtime(**boot: Any) -> Any:
    workload = {"type": "http", "base_url": "http://127.0.0.1:8000", "entrypoint": ["/bin/true"]}
    return parse_manifest({"name": "web", "version": "1.0.0", "workload": workload, **boot})


def persistent(image: Path, image_format: str = "raw", **boot: Any) -> Any:
    """A runtime whose root is ``image``, verified by its checksum and persistent (and ``boot``)."""
    root = {"url": str(image), "checksum": checksum(image), "format": image_format, "persistent": True}
    return runtime(rootfs=root, **boot)


def guest_write(image: Path, pattern: int, image_format: str = "qcow2") -> None:
    """Write 4 KiB of ``pattern`` at offset 0 of ``image`` as a guest would (through QEMU's block layer)."""
    qemu_io(image, image_format, f"write -P {pattern} 0 4k")


def guest_reads(image: Path, pattern: int, image_format: str = "qcow2") -> bool:
    """Whether the guest reads 4 KiB of ``pattern`` at offset 0 of ``image``."""
    result = subprocess.run(
        ["qemu-io", "-f", image_format, "-c", f"read -P {pattern} 0 4k", str(image)],
        capture_output=True,
        text=True,
        check=True,
    )
    return "Pattern verification failed" not in result.stdout


def qemu_io(image: Path, image_format: str, command: str) -> None:
    subprocess.run(
        ["qemu-io", "-f", image_format, "-c", command, str(image)], capture_output=True, check=True
    )


def header(path: Path) -> tuple[str | None, str | None]:
    with open_regular(path, field="t") as stream:
        found = read_qcow2_header(stream, field="t")
    assert found is not None
    return found.backing_file, found.backing_format


def test_a_persistent_root_is_an_overlay_over_the_cached_image_kept_across_boots(
    media: BootMedia, tmp_path: Path
) -> None:
    image = raw_image(tmp_path / "images" / "root.ext4")
    manifest = persistent(image)
    vm_dir = tmp_path / "runtime" / "web-1"
    plan = media.prepare("web-1", vm_dir, manifest, "")

    overlay = vm_dir / "root" / "overlay.qcow2"
    cached = media.fetch(str(image), checksum(image), field=ROOT_FIELD)
    assert cached != image and cached.name == checksum(image).removeprefix("sha256:")
    assert plan.disks == (
        DiskSpec(overlay, format="qcow2", role=DiskRole.ROOTFS, backing=BackingImage(cached, "raw")),
    )
    assert header(overlay) == (str(cached), "raw")
    assert "volant.rootfs=/dev/vda" in plan.kernel_args
    assert "volant.rootfs.persistent=1" in plan.kernel_args

    guest_write(overlay, 0x61)
    assert media.prepare("web-1", vm_dir, manifest, "").disks == plan.disks
    assert guest_reads(overlay, 0x61)  # the overlay was kept, with what the guest wrote
    assert checksum(cached) == checksum(image)  # the base stays as verified


def test_two_vms_share_one_base_file_and_write_their_own(media: BootMedia, tmp_path: Path) -> None:
    image = raw_image(tmp_path / "images" / "root.ext4")
    manifest = persistent(image)
    one = media.prepare("web-1", tmp_path / "runtime" / "web-1", manifest, "").disks[0]
    two = media.prepare("web-2", tmp_path / "runtime" / "web-2", manifest, "").disks[0]
    assert one.backing == two.backing and one.path != two.path
    guest_write(one.path, 0x61)
    assert guest_reads(two.path, ord("i"))  # the other VM reads the image, not the first VM's write


def test_a_root_that_is_not_persistent_is_read_only_and_discards_the_vms_root(
    media: BootMedia, tmp_path: Path
) -> None:
    image = raw_image(tmp_path / "images" / "root.ext4")
    vm_dir = tmp_path / "runtime" / "web-1"
    media.prepare("web-1", vm_dir, persistent(image), "")
    ephemeral = runtime(rootfs={"url": str(image), "checksum": checksum(image)})
    plan = media.prepare("web-1", vm_dir, ephemeral, "")
    assert plan.disks[0].readonly and plan.disks[0].backing is None
    assert "volant.rootfs.persistent=1" not in plan.kernel_args
    assert not (vm_dir / "root").exists()


def test_a_root_without_checksum_is_a_full_copy_since_its_source_may_change(
    media: BootMedia, tmp_path: Path
) -> None:
    image = raw_image(tmp_path / "images" / "root.ext4")
    manifest = runtime(rootfs={"url": str(image), "persistent": True})
    vm_dir = tmp_path / "runtime" / "web-1"
    disk = media.prepare("web-1", vm_dir, manifest, "").disks[0]
    assert disk == DiskSpec(vm_dir / "root" / "image.raw", format="raw", role=DiskRole.ROOTFS)
    assert disk.path.read_bytes() == image.read_bytes()


def test_a_writable_disk_with_a_checksum_is_an_overlay_and_without_one_a_copy(
    media: BootMedia, tmp_path: Path
) -> None:
    verified = raw_image(tmp_path / "images" / "verified.img")
    plain = raw_image(tmp_path / "images" / "plain.img")
    disks = [
        {"name": "cow", "source": str(verified), "checksum": checksum(verified), "target": "cow"},
        {"name": "copy", "source": str(plain)},
    ]
    vm_dir = tmp_path / "runtime" / "web-1"
    cow, copy = media.prepare("web-1", vm_dir, runtime(disks=disks), "").disks
    cached = media.fetch(str(verified), checksum(verified), field="manifest.disks[0].source")
    assert cow == DiskSpec(
        vm_dir / "overlays" / "cow.qcow2", format="qcow2", serial="cow", backing=BackingImage(cached, "raw")
    )
    assert copy == DiskSpec(vm_dir / "disks" / "copy.raw", format="raw")
    guest_write(cow.path, 0x62)
    assert checksum(cached) == checksum(verified)


def test_a_qcow2_image_gets_an_overlay_declaring_qcow2(media: BootMedia, tmp_path: Path) -> None:
    image = tmp_path / "images" / "root.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "1M"], check=True)
    disk = media.prepare("web-1", tmp_path / "runtime" / "web-1", persistent(image, "qcow2"), "").disks[0]
    assert disk.backing is not None and disk.backing.format == "qcow2"
    assert header(disk.path) == (str(disk.backing.path), "qcow2")
    guest_write(disk.path, 0x63)
    assert guest_reads(disk.path, 0x63)


def test_an_image_whose_own_backing_leaves_the_artifact_dirs_gets_no_overlay(
    media: BootMedia, tmp_path: Path
) -> None:
    """The overlay's backing is the fetched image, whose own chain must stay in the artifact dirs."""
    image = write_qcow2(tmp_path / "images" / "root.qcow2", backing="/etc/hostname", backing_format="raw")
    vm_dir = tmp_path / "runtime" / "web-1"
    with pytest.raises(ValidationError, match="outside the directories Volant reads images from") as refused:
        media.prepare("web-1", vm_dir, persistent(image, "qcow2"), "")
    assert refused.value.field == ROOT_FIELD
    assert not (vm_dir / "root").exists()


def test_an_overlay_made_over_another_image_is_refused_and_kept(media: BootMedia, tmp_path: Path) -> None:
    """A new image in the configuration: the VM's overlay only works over the one it was made over."""
    vm_dir = tmp_path / "runtime" / "web-1"
    old = raw_image(tmp_path / "images" / "old.ext4", b"o")
    overlay = media.prepare("web-1", vm_dir, persistent(old), "").disks[0].path
    guest_write(overlay, 0x61)
    new = raw_image(tmp_path / "images" / "new.ext4", b"n")
    with pytest.raises(
        ConflictError, match="an overlay only works over the image it was made over"
    ) as refused:
        media.prepare("web-1", vm_dir, persistent(new), "")
    assert refused.value.field == ROOT_FIELD and refused.value.http_status == 409
    assert guest_reads(overlay, 0x61)


def test_a_link_a_vmm_left_for_the_vms_image_directories_is_replaced(
    media: BootMedia, tmp_path: Path
) -> None:
    """A confined VMM may add entries to its VM's directory (ADR 0031): links under the names of the
    directories the daemon makes its images in do not make it write where they point."""
    outside = tmp_path / "outside"
    outside.mkdir()
    planted = {name: outside / name for name in ("overlay.qcow2", "cow.qcow2", "copy.raw")}
    for path in planted.values():
        path.write_bytes(b"the VMM's")
    vm_dir = tmp_path / "runtime" / "web-1"
    vm_dir.mkdir(parents=True)
    for name in ("root", "overlays", "disks"):
        (vm_dir / name).symlink_to(outside)
    image = raw_image(tmp_path / "images" / "root.ext4")
    plain = raw_image(tmp_path / "images" / "plain.img")
    disks = [
        {"name": "cow", "source": str(image), "checksum": checksum(image)},
        {"name": "copy", "source": str(plain)},
    ]
    plan = media.prepare("web-1", vm_dir, persistent(image, disks=disks), "")
    assert sorted(outside.iterdir()) == sorted(planted.values())
    assert all(path.read_bytes() == b"the VMM's" for path in planted.values())
    for disk in plan.disks:
        assert not disk.path.parent.is_symlink() and disk.path.parent.parent == vm_dir
        assert disk.path.read_bytes() != b"the VMM's"


@pytest.mark.parametrize("swap", ["link", "header"])
def test_an_overlay_replaced_behind_the_daemon_is_refused_and_nothing_is_written_through_it(
    media: BootMedia, tmp_path: Path, swap: str
) -> None:
    """The overlay is the VMM's to write: a link in its place is not followed, and a header naming
    another backing file (another VM's image, a host file) is not attached."""
    image = raw_image(tmp_path / "images" / "root.ext4")
    vm_dir = tmp_path / "runtime" / "web-1"
    overlay = media.prepare("web-1", vm_dir, persistent(image), "").disks[0].path
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    overlay.unlink()
    if swap == "link":
        overlay.symlink_to(victim)
    else:
        write_qcow2(overlay, backing=str(victim), backing_format="raw")
    with pytest.raises(ConflictError, match="this VM's own image cannot be used") as refused:
        media.prepare("web-1", vm_dir, persistent(image), "")
    assert refused.value.field == ROOT_FIELD
    assert victim.read_bytes() == b"untouched"


def test_partial_images_a_killed_daemon_left_are_swept(media: BootMedia, settings: Settings) -> None:
    vm_dir = settings.runtime_dir / "web-1"
    partials = [vm_dir / sub / "x.qcow2.partial" for sub in ("root", "overlays", "disks")]
    for partial in partials:
        partial.parent.mkdir(parents=True)
        partial.write_bytes(b"half")
    media.sweep_partials()
    assert not any(partial.exists() for partial in partials)


def test_a_disk_copy_made_before_overlays_existed_is_kept(media: BootMedia, tmp_path: Path) -> None:
    """A VM whose writable disk ADR 17 copied in full keeps that copy (and what the guest wrote in it)."""
    verified = raw_image(tmp_path / "images" / "verified.img")
    vm_dir = tmp_path / "runtime" / "web-1"
    (vm_dir / "disks").mkdir(parents=True)
    (vm_dir / "disks" / "data.raw").write_bytes(b"written by the guest")
    disks = [{"name": "data", "source": str(verified), "checksum": checksum(verified)}]
    disk = media.prepare("web-1", vm_dir, runtime(disks=disks), "").disks[0]
    assert disk == DiskSpec(vm_dir / "disks" / "data.raw", format="raw")
    assert disk.path.read_bytes() == b"written by the guest" and not (vm_dir / "overlays").exists()
