"""A VM's own writable images: qcow2 overlays over verified, cached images, or full copies.

A persistent root and every writable manifest disk get an image of the VM's own, made on its
first boot and kept across stop and start (removed with the VM's directory). Which kind
(ADR 0037):

* **an overlay** when the artifact has a checksum: the fetched image is then the verified,
  content-addressed cache entry, which never changes, so a qcow2 overlay with it as backing file
  (``qemu-img create -f qcow2 -F <format> -b <image>``) costs a few hundred KiB per VM, and every
  VM of the runtime reads the one cached file;
* **a full copy** otherwise: the source is a file used in place (or a download cached by URL),
  which may change under an overlay and corrupt it.

An image made before stays what it is: an existing copy is used as it is, and an existing
overlay must still name the image the VM's configuration names now (the overlay's header is
written by the VMM, so it is read, never trusted: ConflictError when it names another file,
another format or an external data file). The daemon creates the files at a partial name in a
directory of its own (:func:`~volant_core.vmm_confinement.daemon_directory`) and opens existing
ones without following a symbolic link, so nothing a VMM planted makes it write elsewhere.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from volant_core.errors import ConflictError, LaunchError, ValidationError
from volant_core.images import open_regular, read_qcow2_header
from volant_core.launch import BackingImage
from volant_core.vmm_confinement import daemon_directory

#: Format of every overlay.
OVERLAY_FORMAT = "qcow2"
#: The tool that makes overlays (Debian package ``qemu-utils``).
QEMU_IMG = "qemu-img"
#: Directories of a VM's directory holding its root image, its disk copies and its disk overlays.
ROOT_DIR, DISKS_DIR, OVERLAYS_DIR = "root", "disks", "overlays"
#: Suffix of a VM file being written (its initramfs, one of its own images) until it is complete.
PARTIAL_SUFFIX = ".partial"
#: Where partial images of the VMs lie, as patterns under the directory of the VMs' directories.
WRITABLE_PARTIALS = tuple(
    f"*/{directory}/*{PARTIAL_SUFFIX}" for directory in (ROOT_DIR, DISKS_DIR, OVERLAYS_DIR)
)


@dataclass(frozen=True)
class WritableImage:
    """Where one writable image of a VM lives: ``copy`` if it is a full copy, ``overlay`` if an overlay."""

    copy: Path
    overlay: Path

    @classmethod
    def of_root(cls, vm_dir: Path, image_format: str) -> WritableImage:
        """The persistent root of the VM whose directory is ``vm_dir`` (a copy ``root/image.<format>``
        or an overlay ``root/overlay.qcow2``)."""
        root = vm_dir / ROOT_DIR
        return cls(root / f"image.{image_format}", root / f"overlay.{OVERLAY_FORMAT}")

    @classmethod
    def of_disk(cls, vm_dir: Path, name: str, image_format: str) -> WritableImage:
        """The writable manifest disk ``name`` (a copy ``disks/<name>.<format>``, where ADR 0017 put
        it, or an overlay ``overlays/<name>.qcow2``)."""
        return cls(
            vm_dir / DISKS_DIR / f"{name}.{image_format}", vm_dir / OVERLAYS_DIR / f"{name}.{OVERLAY_FORMAT}"
        )

    def prepare(
        self, image: Path, image_format: str, *, cached: bool, field: str
    ) -> tuple[Path, str, BackingImage | None]:
        """``(path, format, backing)`` of the VM's image of ``image`` (of ``image_format``): the
        existing copy, the existing overlay (checked against ``image``), else a new overlay when
        ``image`` is ``cached`` (verified and content-addressed), else a new copy.

        ConflictError naming ``field`` for an overlay made over another image; LaunchError when
        ``qemu-img`` is missing or fails.
        """
        if _exists(self.copy):
            return self.copy, image_format, None
        backing = BackingImage(image, image_format)
        if _exists(self.overlay):
            _check_overlay(self.overlay, backing, field=field)
            return self.overlay, OVERLAY_FORMAT, backing
        if cached:
            _make(self.overlay, lambda partial: _create_overlay(partial, backing))
            return self.overlay, OVERLAY_FORMAT, backing
        _make(self.copy, lambda partial: shutil.copyfile(image, partial))
        return self.copy, image_format, None


def discard_root(vm_dir: Path) -> None:
    """Remove the persistent root of the VM whose directory is ``vm_dir``, if it has one (its
    writes are gone: the next persistent boot starts from the image again)."""
    directory = vm_dir / ROOT_DIR
    try:
        found = directory.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(found.st_mode):
        shutil.rmtree(directory)
    else:
        directory.unlink()


def _exists(path: Path) -> bool:
    """Whether anything (a link included) sits at ``path`` in a directory of the daemon's own: what
    lies behind a link or in a directory a VMM made is no image of the VM's (:func:`_make` replaces
    that directory)."""
    try:
        parent = path.parent.lstat()
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(parent.st_mode) and parent.st_uid == os.geteuid() and os.path.lexists(path)


def _make(target: Path, write: Callable[[Path], object]) -> None:
    """Write ``target`` through ``write(partial)`` at a partial name in a directory of the
    daemon's own, readable by the daemon only until it is handed to a VMM, then rename it."""
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    daemon_directory(target.parent)
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    partial.unlink(missing_ok=True)
    try:
        write(partial)
        os.chmod(partial, 0o600)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _create_overlay(partial: Path, backing: BackingImage) -> None:
    """``qemu-img create`` an empty qcow2 overlay at ``partial`` over ``backing`` (absolute path)."""
    tool = shutil.which(QEMU_IMG)
    if tool is None:
        raise LaunchError(
            f"{QEMU_IMG} is not installed: a VM's persistent root and writable disks are qcow2 overlays "
            "made with it; install it (Debian: apt-get install qemu-utils)"
        )
    argv = [tool, "create", "-q", "-f", OVERLAY_FORMAT, "-F", backing.format, "-b", str(backing.path)]
    result = subprocess.run([*argv, str(partial)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LaunchError(
            f"{QEMU_IMG} could not make an overlay over {backing.path}: {result.stderr.strip()}"
        )


def _check_overlay(overlay: Path, backing: BackingImage, *, field: str) -> None:
    """ConflictError naming ``field`` unless ``overlay`` is a regular qcow2 file (a link is not
    followed) whose backing file is exactly ``backing`` and which has no external data file."""
    try:
        with open_regular(overlay, field=field) as stream:
            header = read_qcow2_header(stream, field=field)
    except ValidationError as err:
        problem = err.message.removeprefix(f"{field}: ")
    else:
        found = (header.backing_file, header.backing_format, header.data_file) if header else None
        if found == (str(backing.path), backing.format, None):
            return
        problem = (
            f"{overlay} was made over {header.backing_file} ({header.backing_format})"
            if header
            else f"{overlay} is no qcow2 image"
        )
    raise ConflictError(
        f"{field}: this VM's own image cannot be used: {problem}; its configuration names {backing.path} "
        f"({backing.format}), and an overlay only works over the image it was made over. Put that image "
        "(its checksum) back in the configuration, or recreate the VM; for the root, starting the VM once "
        "with persistent_root false discards its changes",
        field=field,
    )
