"""Files a confined VMM needs from outside its VM's directory, and files the daemon writes inside it.

A VMM that runs with ids of its VM's own (:mod:`volant_core.vmm_confinement`) reaches nothing of
the daemon's state directory but its VM's directory, which it may add entries to (mode 1770,
sticky). The hypervisor plugins share these helpers:

- :func:`copy_in` puts a copy of a file the VMM opens by path (a kernel, an initramfs, a read-only
  image in the daemon's 0700 cache) into a directory of the daemon's own inside the VM's
  directory: a reflink (``FICLONE``) where the filesystem shares blocks, else a copy; kept while
  the source keeps its size and modification time.
- :func:`write_record` writes a small file of the daemon's in the VM's directory without following
  a link the VMM may have left under its temporary name.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from volant_core.errors import LaunchError
from volant_core.vmm_confinement import daemon_directory

#: Directory under the VM's directory holding its copies of the kernel and initramfs.
BOOT_DIR = "boot"
#: ``ioctl`` sharing all of a file's blocks with another on the same filesystem (btrfs, XFS).
FICLONE = 0x40049409
#: How the daemon creates its files in a VM's directory: new, never through a link.
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
#: How the daemon opens a log of its own in a VM's directory to append: never through a link.
APPEND_FILE = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_in(vm_dir: Path, source: Path, *, directory: str = BOOT_DIR, name: str | None = None) -> Path:
    """``source`` when it lies in ``vm_dir``, else its copy ``vm_dir/directory/name`` (``name``:
    the source's own by default), made when missing or when the source changed (another size or
    modification time). ``directory`` is made the daemon's own first (:func:`daemon_directory`),
    so nothing a VMM planted there is written through. :class:`LaunchError` naming the source
    when it cannot be copied.
    """
    if source.is_relative_to(vm_dir):
        return source
    copy = vm_dir / directory / (name or source.name)
    try:
        daemon_directory(copy.parent)
        wanted = source.stat()
        if copy.exists():
            present = copy.stat()
            if (present.st_size, present.st_mtime_ns) == (wanted.st_size, wanted.st_mtime_ns):
                return copy
        partial = copy.with_name(copy.name + ".partial")
        partial.unlink(missing_ok=True)
        _clone_or_copy(source, partial)
        shutil.copystat(source, partial)
        partial.replace(copy)
    except OSError as err:
        raise LaunchError(f"cannot copy {source} into the VM's directory for its VMM: {err}") from err
    return copy


def write_record(path: Path, text: str) -> None:
    """Replace ``path`` (in a VM's directory) with a file holding ``text``, atomically; a link or
    file a VMM left under its temporary name is removed, never written through.
    """
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, NEW_FILE, 0o600)
    with os.fdopen(descriptor, "w") as record:
        record.write(text)
    os.replace(partial, path)


def _clone_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` (new) a reflink of ``source``, or a copy where the filesystem cannot share."""
    with source.open("rb") as reader:
        descriptor = os.open(target, NEW_FILE, 0o600)
        with os.fdopen(descriptor, "wb") as writer:
            try:
                fcntl.ioctl(writer.fileno(), FICLONE, reader.fileno())
            except OSError:  # another filesystem, or one without shared blocks (ext4, tmpfs)
                shutil.copyfileobj(reader, writer, 1 << 20)
