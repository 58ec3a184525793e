"""Fresh virtual environments for tests that install packages as a user would (built with uv).

A test builds volant-core as a wheel (:func:`build_wheel`), then :func:`make_venv`
creates a venv on the test run's interpreter holding that wheel and whatever
else it needs, and runs the venv's own executables (:meth:`Venv.run`) in an
environment cleared of the test run's ``VOLANT_*`` settings and venv variables.
Every uv call tries uv's cache alone first, then the package index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Variables of the test run that must not leak into the venv's processes.
LEAKY_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")


def require_uv() -> str:
    """The uv executable; skips the calling test (or module, at import) when uv is not installed."""
    found = shutil.which("uv")
    if found is None:
        pytest.skip(
            "uv is not installed (https://docs.astral.sh/uv/): cannot build test venvs",
            allow_module_level=True,
        )
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """The test run's environment without ``VOLANT_*`` settings or venv/path leaks, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLANT_") and k not in LEAKY_VARIABLES}
    env.update(extra)
    return env


def uv(*args: str) -> None:
    """Run ``uv ARGS``, from uv's cache alone when it can, else reaching the package index."""
    executable = require_uv()
    for network in (("--offline",), ()):
        done = subprocess.run(
            [executable, *args, *network],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode == 0:
            return
    raise AssertionError(f"uv {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def build_wheel(source: Path, out: Path) -> Path:
    """Build the project at ``source`` as one wheel into the empty directory ``out``; its path."""
    uv("build", "--quiet", "--wheel", "--out-dir", str(out), str(source))
    (wheel,) = out.glob("*.whl")
    return wheel


@dataclass(frozen=True)
class Venv:
    """A virtual environment built by :func:`make_venv`."""

    root: Path

    @property
    def python(self) -> Path:
        """The venv's interpreter."""
        return self.root / "bin" / "python"

    @property
    def user_cache(self) -> Path:
        """``XDG_CACHE_HOME`` of the venv's processes (volar keeps its command listing there): inside
        the venv, so that a test leaves nothing in the home directory.
        """
        return self.root / "user-cache"

    @property
    def volantd(self) -> Path:
        """The ``volantd`` console script installed in the venv."""
        return self.root / "bin" / "volantd"

    def run(
        self, executable: str, *args: str, cwd: Path | None = None, timeout: float = 60, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run the venv's own ``bin/EXECUTABLE ARGS`` to completion in :func:`clean_env` (plus
        :attr:`user_cache` and ``env``), capturing its output as text; the exit status is the
        caller's to check.
        """
        return subprocess.run(
            [str(self.root / "bin" / executable), *args],
            cwd=cwd,
            env=clean_env(**{"XDG_CACHE_HOME": str(self.user_cache), **env}),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def pytest(self, directory: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the venv's pytest ARGS in ``directory``, isolated from what lies above it: an empty
        ``pytest.ini`` written there makes it the rootdir, so no configuration or ``conftest.py``
        of an enclosing checkout leaks in.
        """
        (directory / "pytest.ini").write_text("[pytest]\n")
        return self.run(
            "python", "-m", "pytest", "-p", "no:cacheprovider", *args, cwd=directory, timeout=timeout
        )

    def volar(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the venv's own ``volar ARGS`` (see :meth:`run`)."""
        return self.run("volar", *args)

    def install(self, *requirements: Path | str) -> None:
        """``uv pip install`` source trees, wheels or requirement strings, resolving dependencies as a
        user's install would (never from the workspace's sources).
        """
        uv("pip", "install", "--no-sources", "--python", str(self.python), *map(str, requirements))

    def uninstall(self, *names: str) -> None:
        """``uv pip uninstall`` distributions by name."""
        uv("pip", "uninstall", "--python", str(self.python), *names)


def make_venv(directory: Path, wheel: Path, *requirements: Path | str) -> Venv:
    """A venv on this test run's interpreter with volant-core (from ``wheel``) and ``requirements``."""
    uv("venv", "--quiet", "--python", sys.executable, str(directory))
    venv = Venv(directory)
    venv.install(wheel, *requirements)
    return venv
