"""The core's own ``volar doctor`` rows (state directory, guest image tools), as ``volar doctor -o json``
prints them: run in this process with Click's runner, so the mutation run sees the checks
(``tests/test_cli_commands.py`` runs the ``volar`` executable itself).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from volant_core.builtins import GUEST_BUILD_TOOLS
from volant_core.cli.volar import cli


def doctor_rows(state_dir: Path, path: str) -> dict[str, dict[str, Any]]:
    """``volar doctor -o json`` with ``VOLANT_STATE_DIR`` and ``PATH`` set: its rows by check name."""
    env = {"VOLANT_STATE_DIR": str(state_dir), "PATH": path}
    result = CliRunner().invoke(cli, ["doctor", "-o", "json"], env=env)
    return {row["check"]: row for row in json.loads(result.stdout)}


@pytest.fixture
def tools_on_path(tmp_path: Path) -> Path:
    """A directory of executables named like the guest image build tools: the check only looks
    them up on PATH (it runs none), so these stand in for the real ones whatever the host has.
    """
    directory = tmp_path / "bin"
    directory.mkdir()
    for tool in GUEST_BUILD_TOOLS:
        (directory / tool).write_text("#!/bin/sh\nexit 1\n")
        (directory / tool).chmod(0o755)
    return directory


@pytest.mark.parametrize("exists", [True, False], ids=["existing", "to-be-created"])
def test_a_writable_state_dir_and_every_image_tool_pass(
    tmp_path: Path, tools_on_path: Path, exists: bool
) -> None:
    state = tmp_path / "state" / "deeper"
    if exists:
        state.mkdir(parents=True)
    rows = doctor_rows(state, str(tools_on_path))
    assert (rows["state-dir"]["status"], rows["state-dir"]["detail"]) == ("pass", f"{state} is writable")
    assert rows["guest-image-tools"]["status"] == "pass"
    assert rows["guest-image-tools"]["detail"] == "apt-get, dpkg-deb, lz4 and python3.11 found"


def test_a_state_dir_below_a_file_fails_naming_the_setting(tmp_path: Path, tools_on_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    rows = doctor_rows(blocker / "state", str(tools_on_path))
    assert rows["state-dir"] == {
        "check": "state-dir",
        "status": "fail",
        "detail": f"cannot write {blocker / 'state'}",
        "fix": "set VOLANT_STATE_DIR to a writable directory",
    }


def test_missing_image_tools_are_named(tmp_path: Path, tools_on_path: Path) -> None:
    for tool in ("lz4", "python3.11"):
        os.unlink(tools_on_path / tool)
    rows = doctor_rows(tmp_path / "state", str(tools_on_path))
    assert rows["guest-image-tools"] == {
        "check": "guest-image-tools",
        "status": "warn",
        "detail": "missing lz4, python3.11: `volar image build` cannot build the guest image",
        "fix": "apt-get install lz4 python3.11 (or set VOLANT_KERNEL and VOLANT_INITRAMFS)",
    }


def test_each_plugin_setting_is_shown_with_its_variable_and_where_its_value_comes_from(
    tmp_path: Path,
) -> None:
    """``volar doctor`` shows every setting a plugin declared (here the QEMU backend's, installed with
    the core) under its variable: ``VOLANT_<PLUGIN>_<FIELD>``, set or left at its default.
    """
    env = {
        "VOLANT_STATE_DIR": str(tmp_path / "state"),
        "VOLANT_QEMU_ACCEL": "TCG",
        "VOLANT_QEMU_BINARY": None,
    }
    result = CliRunner().invoke(cli, ["doctor", "-o", "json"], env=env)
    rows = {row["check"]: row for row in json.loads(result.stdout)}
    assert rows["setting VOLANT_QEMU_ACCEL"]["detail"] == "VOLANT_QEMU_ACCEL=tcg (set)"
    assert rows["setting VOLANT_QEMU_BINARY"]["detail"] == "VOLANT_QEMU_BINARY=qemu-system-x86_64 (default)"


@pytest.mark.parametrize(
    ("variable", "problem"),
    [
        ("VOLANT_CORE_TYPO", "VOLANT_CORE_TYPO: plugin core has no such setting; its settings: none"),
        (
            "VOLANT_API_LISTN",
            "VOLANT_API_LISTN: neither volantd nor a plugin has this setting; "
            "did you mean VOLANT_API_LISTEN?",
        ),
    ],
    ids=["under-the-core's-prefix", "misspelt"],
)
def test_a_variable_volantd_would_refuse_fails_the_cores_settings_row(
    tmp_path: Path, variable: str, problem: str
) -> None:
    """The problem volantd would stop with, shown in a failing row (and ``volar doctor`` exits 1):
    a variable under the prefix of the core, which declares no settings, or one spelled like a
    setting that nothing reads.
    """
    env = {"VOLANT_STATE_DIR": str(tmp_path / "state"), variable: "1"}
    result = CliRunner().invoke(cli, ["doctor", "-o", "json"], env=env)
    rows = {row["check"]: row for row in json.loads(result.stdout)}
    assert rows["settings of core"]["status"] == "fail"
    assert rows["settings of core"]["detail"] == problem
    assert result.exit_code == 1
