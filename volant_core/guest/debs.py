"""Finding, downloading and unpacking Debian packages with the host's apt, without installing them."""

from __future__ import annotations

import re
import subprocess
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: ``progress(done, total)``: ``done`` of ``total`` units of one download or unpacking are complete.
StepProgress = Callable[[int, int], None]

#: A progress line of ``apt-get -o APT::Status-Fd=1``: ``dlstatus:<item>:<percent>:<description>``.
_DLSTATUS = re.compile(r"dlstatus:[^:]*:([0-9.]+):")


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


def download(package: DebPackage, directory: Path, progress: StepProgress | None = None) -> Path:
    """The ``.deb`` of ``package`` in ``directory``, fetched with ``apt-get download`` unless present.

    ``progress(percent, 100)`` hears how far the download got, as apt reports it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    found = sorted(directory.glob(f"{package.name}_*.deb"))
    wanted = [p for p in found if _run("dpkg-deb", "-f", str(p), "Version").strip() == package.version]
    if wanted:
        return wanted[0]
    _apt_download(package, directory, progress or _ignore)
    return download(package, directory)


def _apt_download(package: DebPackage, directory: Path, progress: StepProgress) -> None:
    """Run ``apt-get download``, passing the percentages of its status lines to ``progress``."""
    argv = ("apt-get", "download", "-q", "-o", "APT::Status-Fd=1", package.spec)
    output: list[str] = []
    with subprocess.Popen(
        argv, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as apt:
        assert apt.stdout is not None
        for line in apt.stdout:
            if status := _DLSTATUS.match(line):
                progress(min(int(float(status.group(1))), 100), 100)
            else:
                output.append(line)
    if apt.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({apt.returncode}): {''.join(output).strip()}")
    progress(100, 100)


def extract(deb: Path, destination: Path, progress: StepProgress | None = None) -> Path:
    """Unpack the files of ``deb`` under ``destination`` and return it.

    ``progress(done, total)`` hears the bytes unpacked so far against the package's ``Installed-Size``.
    """
    destination.mkdir(parents=True, exist_ok=True)
    report = progress or _ignore
    total = int(_run("dpkg-deb", "-f", str(deb), "Installed-Size").strip() or 0) * 1024
    argv = ("dpkg-deb", "--fsys-tarfile", str(deb))
    done = 0
    failure = ""
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as unpack:
        assert unpack.stdout is not None and unpack.stderr is not None
        try:
            with tarfile.open(fileobj=unpack.stdout, mode="r|") as archive:
                for member in archive:
                    archive.extract(member, destination, filter="tar")
                    done = min(done + member.size, total)
                    report(done, total)
        except tarfile.TarError as err:
            failure = str(err)
        errors = unpack.stderr.read().decode(errors="replace").strip()
    if unpack.returncode != 0 or failure:
        raise RuntimeError(f"{' '.join(argv)} failed ({unpack.returncode}): {errors or failure}")
    report(total, total)
    return destination


def _ignore(_done: int, _total: int) -> None:
    """The progress callback used when the caller gave none."""
