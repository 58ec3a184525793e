"""Every package under ``plugins/`` and ``hypervisors/`` passes its own tests installed ALONE.

Each package is installed into a fresh venv holding only volant-core (a wheel
built from this checkout), pytest and the package with its ``test`` extra, if
it has one; its ``tests/`` folder is copied out of the repository, so that
neither the repository's ``conftest.py`` nor its ``pyproject.toml`` settings
leak in, and run there with ``-m "not e2e"``: the guest-booting tests run in
the main suite, which collects every package's tests too. A package whose
tests import something it does not declare, or lean on the repository's
fixtures, fails here with pytest's output.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from volant_core.testing.venvs import make_venv, require_uv

require_uv()

REPO = Path(__file__).resolve().parents[1]
#: Every workspace package, found by glob: a new folder is tested without editing this file.
PACKAGES = sorted(
    manifest.parent
    for pattern in ("plugins/*/pyproject.toml", "hypervisors/*/pyproject.toml")
    for manifest in REPO.glob(pattern)
)
#: Seconds one package's tests may take in its venv (guests do not boot there).
RUN_TIMEOUT = 480


@pytest.mark.parametrize("package", PACKAGES, ids=lambda package: str(package.relative_to(REPO)))
def test_package_passes_its_own_tests_installed_alone(
    package: Path, core_wheel: Path, tmp_path: Path
) -> None:
    """The package's tests pass in a venv with only volant-core, pytest and the package."""
    assert (package / "tests").is_dir(), f"{package.relative_to(REPO)} has no tests/ folder"
    venv = make_venv(
        tmp_path / "venv",
        core_wheel,
        f"{package.name}[test] @ {package.as_uri()}",
        f"pytest=={pytest.__version__}",
    )
    run = tmp_path / "run"
    shutil.copytree(package / "tests", run / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    done = venv.pytest(run, "-m", "not e2e", "tests", timeout=RUN_TIMEOUT)
    assert done.returncode == 0, (
        f"the tests of {package.relative_to(REPO)} fail installed alone (pytest exited {done.returncode}):\n"
        f"{done.stdout}{done.stderr}"
    )
