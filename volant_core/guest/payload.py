"""A runtime's payload: its own initramfs layer, built from a directory and Debian packages.

What the Go original's separate "fledge" tool did, as a ``volar`` command (``volar payload
build``). The layer holds the files of a source directory under a target directory of the guest
(``/app`` by default) and the files of the Debian packages named (at the versions the host's apt
would install; their dependencies are not followed: name each package the workload needs that the
base image lacks). volantd appends it to the base initramfs of every VM of the runtime; the
runtime's ``workload.entrypoint`` starts what it holds.

The build is reproducible (the same inputs give the same bytes: members sorted by path, owned by
root, without timestamps, gzip without a name or time) and cached by the content hash of its
inputs: a second build of unchanged inputs returns the stored layer without unpacking anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from volant_core.artifact_cache import hash_file
from volant_core.errors import ValidationError
from volant_core.guest import debs
from volant_core.guest.cpio import CpioEntry, with_parents, write_archive
from volant_core.guest.python_runtime import usr_merged

#: Bumped when the layout of a layer changes, so that no cached layer of an older builder is reused.
BUILDER_VERSION = 1
#: Where the source directory's files go in the guest unless the caller says otherwise.
DEFAULT_TARGET = "/app"
#: Parts of a Debian package a workload does not need at run time.
_DROPPED_PREFIXES = ("usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/lintian/")
#: Guest directories a payload may not put files in: the base image's own (kestrel, its manifest).
_RESERVED = ("init", "volant", "dev", "proc", "sys")


@dataclass(frozen=True)
class PayloadInputs:
    """What a payload is built from: ``source`` (a directory, or None) copied under ``target``, and
    the Debian ``packages`` (names) unpacked at the guest's root.
    """

    source: Path | None
    packages: tuple[str, ...] = ()
    target: str = DEFAULT_TARGET


@dataclass(frozen=True)
class Payload:
    """A built layer: its file, its ``sha256:<hex>`` checksum, and whether it came from the cache."""

    path: Path
    checksum: str
    reused: bool


def build_payload(inputs: PayloadInputs, cache_dir: Path, log: Callable[[str], None] = print) -> Payload:
    """The layer of ``inputs``, from ``cache_dir/payloads`` when built before, else built there.

    :class:`ValidationError` naming the input (``source``, ``target``, ``packages``) when one cannot
    be used: a missing directory, a special file in it, a target outside the guest's tree or in the
    base image's own directories, a package apt does not know.
    """
    target = _target(inputs.target)
    if inputs.source is None and not inputs.packages:
        raise ValidationError("give a source directory, packages, or both", field="source")
    files = _source_entries(inputs.source, target) if inputs.source is not None else []
    packages = _resolve(inputs.packages)
    key = _key(files, packages)
    out_dir = cache_dir / "payloads"
    layer = out_dir / f"{key}.cpio.gz"
    if layer.is_file():
        return Payload(layer, f"sha256:{hash_file(layer, 'sha256')}", reused=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="payload-", dir=out_dir) as scratch:
        entries = list(files)
        for package in packages:
            log(f"adding {package.spec}")
            deb = debs.download(package, cache_dir / "debs")
            entries += _package_entries(debs.extract(deb, Path(scratch) / package.name))
        partial = Path(scratch) / "layer.cpio.gz"
        write_archive(_ordered(entries), partial)
        partial.replace(layer)
    return Payload(layer, f"sha256:{hash_file(layer, 'sha256')}", reused=False)


def _resolve(names: tuple[str, ...]) -> list[debs.DebPackage]:
    """The packages named, at the versions the host's apt would install, sorted by name."""
    if not names:
        return []
    try:
        return sorted(debs.resolve(*names).values(), key=lambda p: p.name)
    except RuntimeError as err:
        raise ValidationError(f"packages: {err}", field="packages") from None


def _target(target: str) -> str:
    """``target`` as a path relative to the guest's root, refused outside it or in a reserved place."""
    path = PurePosixPath(target)
    relative = path.relative_to("/") if path.is_absolute() else None
    if relative is None or ".." in path.parts or not relative.parts or relative.parts[0] in _RESERVED:
        raise ValidationError(
            f"target {target!r}: give an absolute guest directory such as /app, not the root, not under "
            f"{', '.join('/' + r for r in _RESERVED)} (the base image's own) and without '..'",
            field="target",
        )
    return str(relative)


def _source_entries(source: Path, target: str) -> list[CpioEntry]:
    """The files, links and directories of ``source`` under ``target``; symbolic links are kept as
    links (never followed on the host); any other kind of file is refused, naming it.
    """
    if not source.is_dir():
        raise ValidationError(f"source {source}: no such directory", field="source")
    entries = []
    for directory, dirnames, filenames in os.walk(source):
        dirnames.sort()
        for name in dirnames + sorted(filenames):
            path = Path(directory) / name
            inside = f"{target}/{path.relative_to(source).as_posix()}"
            found = path.lstat()
            mode = stat.S_IMODE(found.st_mode)
            if stat.S_ISLNK(found.st_mode):
                entries.append(CpioEntry.symlink(inside, os.readlink(path)))
            elif stat.S_ISDIR(found.st_mode):
                entries.append(CpioEntry.directory(inside, mode))
            elif stat.S_ISREG(found.st_mode):
                entries.append(CpioEntry.file(inside, path.read_bytes(), mode))
            else:
                raise ValidationError(
                    f"source {path}: not a regular file, directory or symbolic link; remove it",
                    field="source",
                )
    return entries


def _package_entries(tree: Path) -> Iterator[CpioEntry]:
    """The files and links a package unpacked under ``tree``, at their merged-/usr guest paths."""
    for directory, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in sorted(dirnames) if (Path(directory) / d).is_symlink()]:
            path = Path(directory) / name
            inside = usr_merged(Path("/") / path.relative_to(tree))
            if inside.startswith(_DROPPED_PREFIXES):
                continue
            found = path.lstat()
            if stat.S_ISLNK(found.st_mode):
                yield CpioEntry.symlink(inside, os.readlink(path))
            elif stat.S_ISREG(found.st_mode):
                yield CpioEntry.file(inside, path.read_bytes(), stat.S_IMODE(found.st_mode))


def _ordered(entries: list[CpioEntry]) -> list[CpioEntry]:
    """Directories first (every parent, parents before children), then everything else by path; a
    path given twice keeps its last entry (a package file over the same name from an earlier one).
    """
    by_name = {entry.name: entry for entry in entries}
    return with_parents([by_name[name] for name in sorted(by_name)])


def _key(files: list[CpioEntry], packages: list[debs.DebPackage]) -> str:
    """The content hash of a build's inputs: the builder, the files (path, kind, mode, content) and
    the packages at their versions."""
    described = {
        "builder": BUILDER_VERSION,
        "files": [
            [entry.name, entry.kind, entry.mode, hashlib.sha256(entry.payload).hexdigest()] for entry in files
        ],
        "packages": [package.spec for package in packages],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:32]
