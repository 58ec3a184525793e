"""Finding, downloading and unpacking Debian packages with the host's apt, without installing them."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DebPackage:
    """A binary package at the version apt would install."""

    name: str
    version: str

    @property
    def spec(self) -> str:
        """``name=version``, as ``apt-get download`` takes it."""
        return f"{self.name}={self.version}"


def _run(*argv: str, cwd: Path | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _records(names: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """The candidate ``apt-cache show`` record of each package, keyed by package name."""
    records: dict[str, dict[str, str]] = {}
    for block in _run("apt-cache", "show", "--no-all-versions", *names).split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(" ")
        )
        if "Package" in fields:
            records.setdefault(fields["Package"], fields)
    return records


def resolve(*names: str, meta_prefixes: Mapping[str, str] | None = None) -> dict[str, DebPackage]:
    """The candidate version of every package in ``names``, in one ``apt-cache`` call.

    For a metapackage listed in ``meta_prefixes`` (name -> prefix) the result is instead the package
    it depends on whose name starts with the prefix, at the version the metapackage pins.
    """
    records = _records(names)
    missing = [n for n in names if n not in records]
    if missing:
        raise RuntimeError(f"apt knows no package {', '.join(missing)}: run apt-get update")
    resolved = {n: DebPackage(n, records[n]["Version"]) for n in names}
    for meta, prefix in (meta_prefixes or {}).items():
        resolved[meta] = _pinned_dependency(meta, records[meta].get("Depends", ""), prefix)
    return resolved


def _pinned_dependency(meta: str, depends: str, prefix: str) -> DebPackage:
    for alternative in depends.split(","):
        match = re.match(r"\s*([^\s(|]+)\s*(?:\(\s*=\s*([^)\s]+)\s*\))?", alternative)
        if match and match.group(1).startswith(prefix):
            name, version = match.group(1), match.group(2)
            return DebPackage(name, version) if version else resolve(name)[name]
    raise RuntimeError(f"{meta} depends on no {prefix}* package")


def download(package: DebPackage, directory: Path) -> Path:
    """The ``.deb`` of ``package`` in ``directory``, fetched with ``apt-get download`` unless present."""
    directory.mkdir(parents=True, exist_ok=True)
    found = sorted(directory.glob(f"{package.name}_*.deb"))
    wanted = [p for p in found if _run("dpkg-deb", "-f", str(p), "Version").strip() == package.version]
    if wanted:
        return wanted[0]
    _run("apt-get", "download", "-q", package.spec, cwd=directory)
    return download(package, directory)


def extract(deb: Path, destination: Path) -> Path:
    """Unpack the files of ``deb`` under ``destination`` (``dpkg-deb -x``) and return it."""
    destination.mkdir(parents=True, exist_ok=True)
    _run("dpkg-deb", "-x", str(deb), str(destination))
    return destination
