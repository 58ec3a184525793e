"""A plugin added to the project's environment with pip survives the README's two commands.

`make demo` and `make test` both run `scripts/bootstrap.sh`, which syncs the environment to the
lock file. A sync that removed every package the lock does not name would uninstall the plugin a
user just added (it did, before ADR 40). Here the bootstrap builds an environment (in a temporary
directory, through ``UV_PROJECT_ENVIRONMENT``), a plugin is installed into it with the pip it
provides, the bootstrap runs again, and volantd still loads the plugin; ``pip uninstall`` removes it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from volant_core.testing.venvs import Venv, build_wheel, clean_env, require_uv

require_uv()

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "tests" / "packages" / "volant-lifecycle-example"


def bootstrap(environment: Path) -> None:
    """Run the README commands' bootstrap with the project environment at ``environment``."""
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "bootstrap.sh")],
        cwd=REPO,
        env=clean_env(UV_PROJECT_ENVIRONMENT=str(environment)),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"bootstrap failed ({done.returncode}):\n{done.stdout}{done.stderr}"


def loaded_plugins(venv: Venv) -> dict[str, str]:
    """``volantd --list-plugins`` of ``venv``: each plugin's name and its status."""
    listed = venv.run("volantd", "--list-plugins")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:] if line.strip()]
    return {row[0]: row[1] for row in rows}


def test_a_plugin_installed_with_pip_survives_the_bootstrap_and_pip_removes_it(tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    bootstrap(environment)
    venv = Venv(environment)
    assert "lifecycle-example" not in loaded_plugins(venv)

    wheel = build_wheel(PLUGIN, tmp_path / "wheel")
    installed = venv.run("pip", "install", "--no-deps", "--no-index", str(wheel))
    assert installed.returncode == 0, installed.stderr
    assert loaded_plugins(venv)["lifecycle-example"] == "loaded"

    bootstrap(environment)  # what `make demo` and `make test` run first
    assert loaded_plugins(venv)["lifecycle-example"] == "loaded"
    assert loaded_plugins(venv)["qemu"] == "loaded"  # the locked packages are all there still

    removed = venv.run("pip", "uninstall", "--yes", "volant-lifecycle-example")
    assert removed.returncode == 0, removed.stderr
    assert "lifecycle-example" not in loaded_plugins(venv)
