"""The boot media a VM gets: a runtime's root filesystem and disks become the launch's disks
(real files, the built-in boot sources); no hypervisor is started here."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from volant_core import builtins
from volant_core.descriptors import BootSourceDescriptor
from volant_core.errors import ValidationError
from volant_core.kernel_cmdline import MAX_CMDLINE_BYTES
from volant_core.launch import DiskRole, DiskSpec
from volant_core.manifest import parse_manifest
from volant_core.orchestrator.bootmedia import BootMedia
from volant_core.registry import Registry
from volant_core.settings import load_settings
from volant_core.testing.qcow2 import write_qcow2


@pytest.fixture
def media(tmp_path: Path) -> BootMedia:
    """Boot media with placeholder base images (nothing boots) and the built-in boot sources."""
    kernel, initramfs = tmp_path / "vmlinux", tmp_path / "initramfs.img"
    kernel.write_bytes(b"kernel")
    initramfs.write_bytes(b"base")
    settings = load_settings(
        {}, state_dir=tmp_path / "state", kernel=kernel, initramfs=initramfs, artifact_dirs=(tmp_path,)
    )
    sources: Registry[BootSourceDescriptor] = Registry("boot source")
    for source in builtins.volant_boot_sources():
        sources.add(source.name, source, "volant_core")
    return BootMedia(settings, sources, log=lambda _line: None)


def image(path: Path, content: bytes) -> Path:
    """A disk image file holding ``content``."""
    path.write_bytes(content)
    return path


def manifest(**boot: Any) -> Any:
    """A runtime with the boot media in ``boot`` (``rootfs``, ``disks``)."""
    workload = {"type": "http", "base_url": "http://127.0.0.1:8000", "entrypoint": ["/bin/true"]}
    return parse_manifest({"name": "web", "version": "1.0.0", "workload": workload, **boot})


def test_rootfs_is_the_first_disk_read_only_and_named_on_the_command_line(
    media: BootMedia, tmp_path: Path
) -> None:
    rootfs = image(tmp_path / "root.ext4", b"root filesystem")
    data = image(tmp_path / "data.img", b"data")
    seed = write_qcow2(tmp_path / "seed.qcow2")
    disks = [
        {"name": "data", "source": str(data)},
        {"name": "seed", "source": str(seed), "readonly": True, "format": "qcow2"},
    ]
    vm_dir = tmp_path / "vm"
    plan = media.prepare("web-1", vm_dir, manifest(rootfs={"url": str(rootfs)}, disks=disks), "")

    copy = vm_dir / "disks" / "data.raw"
    assert plan.disks == (
        DiskSpec(rootfs, readonly=True, format="raw", role=DiskRole.ROOTFS),  # the guest cannot write it
        DiskSpec(copy, readonly=False, format="raw"),  # the VM's own copy: the source stays as it was
        DiskSpec(seed, readonly=True, format="qcow2"),
    )
    assert copy.read_bytes() == b"data"
    assert "volant.rootfs=/dev/vda" in plan.kernel_args


def test_a_vms_disk_copy_is_made_once_and_kept_across_boots(media: BootMedia, tmp_path: Path) -> None:
    data = image(tmp_path / "data.img", b"blank")
    vm_dir = tmp_path / "vm"
    runtime = manifest(disks=[{"name": "data", "source": str(data)}])
    copy = media.prepare("web-1", vm_dir, runtime, "").disks[0].path
    copy.write_bytes(b"written by the guest")
    assert media.prepare("web-1", vm_dir, runtime, "").disks[0].path == copy
    assert copy.read_bytes() == b"written by the guest"
    assert data.read_bytes() == b"blank"
    assert "volant.rootfs" not in " ".join(media.prepare("web-1", vm_dir, runtime, "").kernel_args)


def test_a_rootfs_with_the_wrong_checksum_is_refused_naming_the_field(
    media: BootMedia, tmp_path: Path
) -> None:
    rootfs = image(tmp_path / "root.ext4", b"tampered")
    wrong = hashlib.sha256(b"expected").hexdigest()
    vm_dir = tmp_path / "vm"
    with pytest.raises(ValidationError, match="checksum mismatch") as refused:
        media.prepare("web-1", vm_dir, manifest(rootfs={"url": str(rootfs), "checksum": wrong}), "")
    assert refused.value.field == "manifest.rootfs.url"
    assert not vm_dir.exists()  # nothing written for a VM that does not boot


def test_a_writable_qcow2_is_checked_again_where_its_copy_lies(media: BootMedia, tmp_path: Path) -> None:
    """A relative backing name starts from the image's directory: the VM's copy lies elsewhere."""
    image(tmp_path / "base.img", b"base")
    overlay = write_qcow2(tmp_path / "overlay.qcow2", backing="base.img", backing_format="raw")
    runtime = manifest(disks=[{"name": "data", "source": str(overlay), "format": "qcow2"}])
    with pytest.raises(ValidationError, match=r"base.img' of .*/disks/data.qcow2: no such file") as refused:
        media.prepare("web-1", tmp_path / "vm", runtime, "")
    assert refused.value.field == "manifest.disks[0].source"
    read_only = manifest(
        disks=[{"name": "data", "source": str(overlay), "format": "qcow2", "readonly": True}]
    )
    assert media.prepare("web-1", tmp_path / "vm", read_only, "").disks[0].path == overlay


def test_a_command_line_the_guest_kernel_would_cut_is_refused(media: BootMedia, tmp_path: Path) -> None:
    runtime = manifest()
    fits = media.prepare("web-1", tmp_path / "vm", runtime, "")
    room = MAX_CMDLINE_BYTES - 1 - len(" ".join(fits.kernel_args)) - 1  # the separating space
    assert media.prepare("web-1", tmp_path / "vm", runtime, "x=" + "y" * (room - 2)).kernel_args
    with pytest.raises(ValidationError, match="the guest kernel keeps 2047") as refused:
        media.prepare("web-1", tmp_path / "vm", runtime, "x=" + "y" * (room - 1))
    assert refused.value.field == "kernel_cmdline"


def test_a_link_in_a_local_path_is_refused_before_the_file_is_read(media: BootMedia, tmp_path: Path) -> None:
    """A linked directory in the middle of the path: opening the file without following a link in
    its last component is not enough, the path is resolved and checked before the boot source reads
    it (with a checksum it would copy the file into the cache, from where volantd reads images)."""
    target = Path("/etc/hostname")
    (tmp_path / "etc").symlink_to(target.parent)
    checksum = hashlib.sha256(target.read_bytes()).hexdigest()
    with pytest.raises(ValidationError, match=f"resolved: {target}") as refused:
        media.fetch(str(tmp_path / "etc" / target.name), checksum, field="kernel_override")
    assert "is outside the directories Volant reads images from" in refused.value.message
    assert refused.value.field == "kernel_override"
    assert not (tmp_path / "state" / "cache").exists()
