"""A trimmed copy of the host's Debian ``python3.11`` for the guest: interpreter, shared libraries
and a byte-compiled standard library without tests, GUI, packaging tools or sources."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from .cpio import CpioEntry

#: The interpreter copied into the guest (Debian's package path; the guest runs the same binary).
PYTHON = Path("/usr/bin/python3.11")
STDLIB = Path("/usr/lib/python3.11")

_DROPPED_DIRS = frozenset(
    {
        "test",
        "tests",
        "idlelib",
        "tkinter",
        "turtledemo",
        "ensurepip",
        "lib2to3",
        "distutils",
        "site-packages",
        "dist-packages",
        "__pycache__",
        "pydoc_data",
        "venv",
    }
)
_DROPPED_PREFIXES = ("config-3.11",)
_DROPPED_EXTENSIONS = (
    "_test",
    "_ctypes_test",
    "xxlimited",
    "_xxtestfuzz",
    "_tkinter",
    "_curses",
    "readline",
    "nis",
    "ossaudiodev",
    "_dbm",
    "_crypt",
)


def _kept(relative: Path) -> bool:
    for part in relative.parts[:-1]:
        if part in _DROPPED_DIRS or part.startswith(_DROPPED_PREFIXES):
            return False
    name = relative.name
    if name.endswith(".so"):
        return not name.startswith(_DROPPED_EXTENSIONS)
    return name.endswith(".py") and relative.parts[0] not in _DROPPED_DIRS


def stdlib_files() -> list[Path]:
    """The kept standard library files (``.py`` sources and extension modules), sorted, relative."""
    return sorted(
        p.relative_to(STDLIB)
        for p in STDLIB.rglob("*")
        if p.is_file() and not p.is_symlink() and _kept(p.relative_to(STDLIB))
    )


def _elves(kept: list[Path]) -> list[Path]:
    """The interpreter and the kept extension modules: what the dynamic loader will load from."""
    return [PYTHON, *(STDLIB / r for r in kept if r.suffix == ".so")]


def inputs_digest() -> str:
    """A content hash of everything :func:`runtime_entries` reads from the host."""
    kept = stdlib_files()
    digest = hashlib.sha256()
    for path in [*(STDLIB / r for r in kept), PYTHON, *_shared_libraries(_elves(kept))]:
        digest.update(str(path).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _shared_libraries(elves: list[Path]) -> list[Path]:
    """The shared libraries (and the ELF interpreter) ``ldd`` reports for ``elves``."""
    out = subprocess.run(["ldd", *map(str, elves)], capture_output=True, text=True, check=True).stdout
    found: set[Path] = set()
    for line in out.splitlines():
        words = line.split()
        if "=>" in words and words[words.index("=>") + 1].startswith("/"):
            found.add(Path(words[words.index("=>") + 1]))
        elif words and words[0].startswith("/") and not line.endswith(":"):
            found.add(Path(words[0]))
    return sorted(found)


def usr_merged(path: Path) -> str:
    """``path`` inside the guest, which has Debian's merged /usr (``/lib`` -> ``usr/lib``)."""
    text = str(path)
    for top in ("/lib/", "/lib64/", "/bin/", "/sbin/"):
        if text.startswith(top):
            return "usr" + text
    return text.lstrip("/")


def compile_tree(stage: Path, tree: Path) -> None:
    """Byte-compile the sources under ``tree`` with the guest's interpreter, next to the sources.

    ``stage`` stands for the guest's root: the names recorded in the code objects are guest paths.
    Hash-based unchecked ``.pyc`` files need no sources and carry no timestamps.
    """
    subprocess.run(
        [
            str(PYTHON),
            "-m",
            "compileall",
            "-q",
            "-b",
            "-j0",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(stage),
            "-p",
            "/",
            str(tree),
        ],
        check=True,
    )


def runtime_entries(work_dir: Path) -> Iterator[CpioEntry]:
    """Archive entries for the interpreter, its libraries and the compiled standard library.

    ``work_dir`` is a scratch directory (emptied first) where the library is staged and compiled.
    """
    shutil.rmtree(work_dir, ignore_errors=True)
    kept = stdlib_files()
    guest_lib = work_dir / STDLIB.relative_to("/")
    for relative in kept:
        (guest_lib / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(STDLIB / relative, guest_lib / relative)
    compile_tree(work_dir, guest_lib)
    yield CpioEntry.file(usr_merged(PYTHON), PYTHON.read_bytes(), 0o755)
    yield CpioEntry.symlink("usr/bin/python3", PYTHON.name)
    for library in _shared_libraries(_elves(kept)):
        yield CpioEntry.file(usr_merged(library), library.resolve().read_bytes(), 0o755)
    for relative in kept:
        if relative.suffix == ".so":
            yield CpioEntry.file(usr_merged(STDLIB / relative), (STDLIB / relative).read_bytes(), 0o755)
        else:
            compiled = guest_lib / relative.with_suffix(".pyc")
            yield CpioEntry.file(usr_merged(compiled.relative_to(work_dir)), compiled.read_bytes())
