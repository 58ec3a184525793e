"""The ``volar`` examples of the user guide's configuration, restart-policy and deployment sections work.

Each ``sh`` block of those sections is run, line by line, against a real volantd (on the
host-process backend: what the commands do does not depend on a guest), in the order a reader
would type them (``volar`` in this process, as its console script runs it; other lines with bash).
A line must exit 0, and a comment that shows what the command prints
(``# web-1: configuration version 2 ...``) must be a line of its output. Lines that follow a stream
until Ctrl-C (``volar events``) and ``curl`` lines (the API has its own tests) are left out.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from volant_core.cli.volar import cli as volar_cli
from volant_core.testing.daemon import RunningDaemon

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "user-guide.md"
#: The sections whose examples run, in the order they run (the restart example creates ``web-1``).
SECTIONS = (
    "Restart policies",
    "VM configuration: versions, history and rollback",
    "Deployments: listing and rolling out a new configuration",
)
#: A comment showing output: it starts with the VM's or deployment's name and a colon.
SHOWN_OUTPUT = re.compile(r"#\s*(?P<line>web(?:-\d+)?: .+?)\s*$")
#: The runtime the guide's examples name, and the one the test daemon has installed.
GUIDE_RUNTIME = "hello-http"


def section(text: str, title: str) -> str:
    """The text under the ``## title`` heading of ``text``, up to the next ``##`` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(?P<body>.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"the user guide has no section '## {title}'"
    return match["body"]


def example_lines(body: str) -> Iterator[str]:
    """The shell lines of the ``sh`` blocks of ``body`` (continuations joined) that can run here."""
    for block in re.findall(r"^```sh\n(.*?)^```", body, re.MULTILINE | re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.split("#", 1)[0].strip() if line.lstrip().startswith("#") else line.strip()
            if command and not command.startswith(("curl ", "volar events")):
                yield line


def run_line(line: str, runtime: str, api: str) -> None:
    """Run one example line as the reader would (in the current directory), with the test daemon's
    runtime in place of the guide's: ``volar`` in this process (as its console script runs it),
    anything else with bash.
    """
    command = line.replace(GUIDE_RUNTIME, runtime)
    if command.startswith("volar "):
        result = CliRunner().invoke(
            volar_cli, shlex.split(command, comments=True)[1:], env={"VOLANT_API": api}
        )
        status, output = result.exit_code, result.output
    else:
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=False)
        status, output = done.returncode, done.stdout + done.stderr
    assert status == 0, f"`{line}` failed ({status}):\n{output}"
    if shown := SHOWN_OUTPUT.search(line):
        assert shown["line"] in output.splitlines(), f"`{line}` printed:\n{output}"


def test_the_examples_exist() -> None:
    """Guards the test below against passing vacuously."""
    text = GUIDE.read_text()
    for title in SECTIONS:
        assert any(line.startswith("volar ") for line in example_lines(section(text, title))), title


def test_user_guide_examples_run(
    host_api: RunningDaemon, host_manifest: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every runnable example line of the sections works, and prints what its comment shows."""
    text = GUIDE.read_text()
    runtime = host_manifest["name"]
    monkeypatch.chdir(tmp_path)  # the files the examples write
    for title in SECTIONS:
        if title.startswith("Deployments"):  # its examples change the deployment the section before made
            body = {"name": "web", "replicas": 1, "config": {"plugin": runtime}}
            assert host_api.request("POST", "/api/v1/deployments", body).status == 201
        for line in example_lines(section(text, title)):
            run_line(line, runtime, host_api.url)
