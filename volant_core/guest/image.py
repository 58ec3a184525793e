"""Building and caching the guest artifacts: the PVH kernel and the base initramfs with kestrel."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..agent import constants as guest_paths
from ..agent import dhcp
from . import debs, kernel, python_runtime
from .cpio import CpioEntry, with_parents, write_archive

#: ``progress(task, done, total)``: ``done`` of ``total`` units of ``task`` are complete. Tasks are
#: ``download <package>`` (percent), ``extract <package>`` (bytes) and ``write initramfs`` (bytes of
#: the archive compressed); each is reported repeatedly as it advances and ends with ``done == total``.
Progress = Callable[[str, int, int], None]

#: Kernel arguments every guest built here needs (serial console, reboot on panic).
BASE_KERNEL_ARGS: tuple[str, ...] = ("console=ttyS0", "panic=-1", "loglevel=4")

_KERNEL_META = "linux-image-cloud-amd64"
_BUSYBOX = "busybox-static"
_AGENT_SOURCES = Path(guest_paths.__file__).parent
_BUILDER_SOURCES = Path(__file__).parent
_KESTREL_PACKAGE = "kestrel"
#: Length of a build's directory name (the start of its key), and the files a build holds.
_BUILD_NAME_LENGTH = 24
_KERNEL_FILE = "vmlinux"
_INITRAMFS_FILE = "initramfs.cpio.gz"
_ROOT_DIRS = (
    "dev",
    "proc",
    "sys",
    "tmp",
    "run",
    "root",
    "etc",
    "volant",
    "usr/bin",
    "usr/sbin",
    "usr/lib",
    "usr/lib64",
)
_MERGED_USR_LINKS = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
_INIT_SCRIPT = """#!{python} -I
import sys
sys.path.insert(0, {libdir!r})
from {package}.__main__ import main
main(["--pid1"])
"""
#: Nodes /init needs before it mounts devtmpfs (Python reads /dev/urandom at start-up).
_DEVICE_NODES = {"console": (5, 1, 0o600), "null": (1, 3, 0o666), "urandom": (1, 9, 0o666)}
_ETC_FILES = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": b"root:x:0:\n",
    "etc/hosts": b"127.0.0.1 localhost\n::1 localhost\n",
}


@dataclass(frozen=True)
class GuestArtifacts:
    """A built guest: boot ``kernel`` (uncompressed PVH vmlinux) with ``initramfs`` (gzip newc).

    ``key`` is the content hash of the build inputs; it names the cache entry.
    """

    kernel: Path
    initramfs: Path
    key: str


def _sources_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for source in sorted(directory.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def _build_key(packages: dict[str, debs.DebPackage]) -> str:
    parts = [
        *(p.spec for p in packages.values()),
        python_runtime.inputs_digest(),
        _sources_digest(_AGENT_SOURCES),
        _sources_digest(_BUILDER_SOURCES),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _busybox_entries(busybox: Path) -> Iterator[CpioEntry]:
    yield CpioEntry.file("usr/bin/busybox", busybox.read_bytes(), 0o755)
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout
    for applet in sorted(set(applets.split()) - {"busybox"}):
        yield CpioEntry.symlink(f"usr/bin/{applet}", "busybox")


def _module_entries(modules_dir: Path) -> Iterator[CpioEntry]:
    guest_dir = f"usr/lib/modules/{modules_dir.name}"
    order = kernel.module_load_order(modules_dir, kernel.GUEST_MODULES)
    names = [f"/{guest_dir}/{m.relative_to(modules_dir)}" for m in order]
    for module, name in zip(order, names, strict=True):
        yield CpioEntry.file(name, module.read_bytes())
    yield CpioEntry.file(guest_paths.MODULES_LIST, "".join(f"{n}\n" for n in names).encode())


def _kestrel_entries(stage: Path) -> Iterator[CpioEntry]:
    libdir = Path(guest_paths.KESTREL_LIBDIR)
    package_dir = stage / libdir.relative_to("/") / _KESTREL_PACKAGE
    package_dir.mkdir(parents=True)
    for source in sorted(_AGENT_SOURCES.glob("*.py")):
        shutil.copyfile(source, package_dir / source.name)
    python_runtime.compile_tree(stage, package_dir)
    for compiled in sorted(package_dir.glob("*.pyc")):
        yield CpioEntry.file(str(compiled.relative_to(stage)), compiled.read_bytes())
    init = _INIT_SCRIPT.format(python=python_runtime.PYTHON, libdir=str(libdir), package=_KESTREL_PACKAGE)
    yield CpioEntry.file("init", init.encode(), 0o755)


def _initramfs_entries(root: Path, busybox: Path, modules_dir: Path) -> list[CpioEntry]:
    entries = [CpioEntry.directory(d) for d in _ROOT_DIRS]
    entries += [CpioEntry.symlink(link, target) for link, target in _MERGED_USR_LINKS.items()]
    entries += [CpioEntry.chardev(f"dev/{name}", *node) for name, node in _DEVICE_NODES.items()]
    entries += [CpioEntry.file(path, data) for path, data in _ETC_FILES.items()]
    entries.append(CpioEntry.file(guest_paths.UDHCPC_SCRIPT.lstrip("/"), dhcp.SCRIPT.encode(), 0o755))
    entries += _busybox_entries(busybox)
    entries += _module_entries(modules_dir)
    entries += python_runtime.runtime_entries(root / "python")
    entries += _kestrel_entries(root / "kestrel")
    return with_parents(entries)


def _fetch(package: debs.DebPackage, debs_dir: Path, destination: Path, progress: Progress) -> Path:
    """Download (unless cached) and unpack ``package`` under ``destination``, reporting both steps."""
    deb = debs.download(package, debs_dir, functools.partial(progress, f"download {package.name}"))
    return debs.extract(deb, destination, functools.partial(progress, f"extract {package.name}"))


def _build(
    packages: dict[str, debs.DebPackage],
    cache_dir: Path,
    out: Path,
    log: Callable[[str], None],
    progress: Progress,
) -> None:
    with tempfile.TemporaryDirectory(prefix="build-", dir=cache_dir) as scratch:
        root = Path(scratch)
        debs_dir = cache_dir / "debs"
        log(f"fetching {packages[_KERNEL_META].spec} and {packages[_BUSYBOX].spec}")
        kernel_tree = _fetch(packages[_KERNEL_META], debs_dir, root / "kernel", progress)
        busybox_tree = _fetch(packages[_BUSYBOX], debs_dir, root / "busybox", progress)
        log("extracting vmlinux")
        build = root / "out"
        build.mkdir()
        vmlinuz = next((kernel_tree / "boot").glob("vmlinuz-*"))
        kernel.extract_vmlinux(vmlinuz, build / _KERNEL_FILE)
        log("assembling the initramfs (python runtime, modules, busybox, kestrel)")
        modules_dir = next((kernel_tree / "lib/modules").iterdir())
        entries = _initramfs_entries(root, busybox_tree / "bin/busybox", modules_dir)
        write_archive(entries, build / _INITRAMFS_FILE, functools.partial(progress, "write initramfs"))
        build.rename(out)


def _is_build(entry: Path) -> bool:
    """Whether ``entry`` is a build directory of the cache (named by the start of its key)."""
    return entry.is_dir() and len(entry.name) == _BUILD_NAME_LENGTH and entry.name.isalnum()


def _prune(cache_dir: Path, keep: Path) -> None:
    """Delete builds other than ``keep`` (stale inputs); downloaded packages stay."""
    for entry in cache_dir.iterdir():
        if _is_build(entry) and entry != keep:
            shutil.rmtree(entry)


def newest_build(cache_dir: Path) -> GuestArtifacts | None:
    """The most recently built complete guest image in ``cache_dir`` whatever its inputs, without
    asking apt anything; None when there is none. Its ``key`` is the directory's name.
    """
    builds = [
        entry
        for entry in (cache_dir.iterdir() if cache_dir.is_dir() else ())
        if _is_build(entry) and (entry / _KERNEL_FILE).is_file() and (entry / _INITRAMFS_FILE).is_file()
    ]
    if not builds:
        return None
    newest = max(builds, key=lambda entry: entry.stat().st_mtime_ns)
    return GuestArtifacts(kernel=newest / _KERNEL_FILE, initramfs=newest / _INITRAMFS_FILE, key=newest.name)


def ensure_guest(
    cache_dir: Path, *, log: Callable[[str], None] | None = None, progress: Progress | None = None
) -> GuestArtifacts:
    """Return the guest artifacts, building them into ``cache_dir`` first unless already cached.

    The cache entry is named by a hash of the inputs (kernel and busybox package versions, the
    host's python3.11 files, kestrel's and this builder's sources), so a changed input gives a new
    build and an unchanged one returns at once. Builds are serialised by a lock file.

    ``log`` hears one line per build step; ``progress`` (see :data:`Progress`) hears how far the
    downloads, the unpacking and the initramfs writing got. Nothing is printed here.
    """
    say = log or (lambda _message: None)
    cache_dir.mkdir(parents=True, exist_ok=True)
    packages = debs.resolve(_KERNEL_META, _BUSYBOX, meta_prefixes={_KERNEL_META: "linux-image-"})
    key = _build_key(packages)
    out = cache_dir / key[:_BUILD_NAME_LENGTH]
    with (cache_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.is_dir():
            say(f"building guest {out.name} in {cache_dir}")
            _build(packages, cache_dir, out, say, progress or (lambda _task, _done, _total: None))
            _prune(cache_dir, keep=out)
    return GuestArtifacts(kernel=out / _KERNEL_FILE, initramfs=out / _INITRAMFS_FILE, key=key)
