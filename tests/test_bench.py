"""The benchmarks under ``bench/`` keep working: each runs with a few rounds and prints its
comparison lines. What they measure is never asserted (times belong to the benchmarks)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from volant_core.agent_client import DEFAULT_MAX_ANSWER

BENCH = Path(__file__).parents[1] / "bench"
#: One comparison line: ``<what>: ratio <r>  (median ... ms against ... ms, +... ms, N rounds)``.
LINE = re.compile(
    r"^[^:]+: ratio \d+\.\d\d  \(median [\d.]+ ms against [\d.]+ ms, [+-][\d.]+ ms, \d+ rounds\)"
)
#: A CPU line: ``<what>, CPU ...: <t> ms through the API against <t> ms direct, +<t> ms``.
CPU_LINE = re.compile(
    r"^[^:]+, CPU [^:]+: [\d.]+ ms through the API against [\d.]+ ms direct, [+-][\d.]+ ms$"
)

#: A figure against an issue's target: ``<what>: <figure> ... (target >= <t>[ unit])``, or the
#: control plane's rate and p50 each against theirs.
TARGET_LINE = re.compile(r"^[^:]+: [\d.]+.*\(target [<>]= [\d.]+( ms| MiB)?\)$")
#: The CPU one round takes: ``<what>: <t> ms, at most <n>/s on one free core``, maybe followed by
#: ``; the client's <t> ms in its own process``.
CPU_PER_ROUND = re.compile(
    r"^[^:]+: [\d.]+ ms, at most \d+/s on one free core(; the client's [\d.]+ ms in its own process)?$"
)
#: The CPU a command's process takes: ``<what>, CPU: <t> ms against <t> ms for python -c pass``.
CHILD_CPU = re.compile(r"^[^:]+, CPU: \d+ ms against \d+ ms for python -c pass$")
FORMS = (LINE, CPU_LINE, TARGET_LINE, CPU_PER_ROUND, CHILD_CPU)
#: The agent proxy's download: 1 MiB over what the agent client reads whole, as ``make bench``'s
#: 64 MiB is, so a bench that reads it whole (and so stops working) fails here too.
DOWNLOAD_MIB = DEFAULT_MAX_ANSWER // 2**20 + 1


@pytest.mark.parametrize(
    ("script", "options", "lines"),
    [
        (
            "agent_proxy.py",
            ["--rounds", "3", "--mib", str(DOWNLOAD_MIB)],
            [
                "small request",
                "small request, CPU in this process (client and daemon; kestrel runs apart)",
                f"{DOWNLOAD_MIB} MiB download",
            ],
        ),
        ("create_to_running.py", ["--rounds", "2"], ["create to running, then delete"]),
        (
            "control_plane.py",
            ["--rounds", "3"],
            [
                "create + delete through the API, against the store alone",
                "control plane",
                "CPU per create+delete in the daemon",
            ],
        ),
        (
            "cli_startup.py",
            ["--rounds", "2"],
            [
                "volar --help",
                "volar --help, start",
                "volar --help, CPU",
                "volar vms list (no volantd)",
                "volar vms list (no volantd), start",
                "volar vms list (no volantd), CPU",
            ],
        ),
        (
            "api_server.py",
            ["--seconds", "0.2", "--rounds", "1"],
            [
                "/healthz, 1 client(s)",
                "GET /api/v1/vms (1000 VMs), 1 client(s)",
                "/healthz, 8 client(s)",
                "GET /api/v1/vms (1000 VMs), 8 client(s)",
                "volantd RSS with 1000 VMs and 10 SSE clients",
            ],
        ),
    ],
)
def test_benchmark_runs_and_prints_its_ratios(script: str, options: list[str], lines: list[str]) -> None:
    run = subprocess.run(
        [sys.executable, str(BENCH / script), *options],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    printed = run.stdout.splitlines()
    assert [line.split(":")[0] for line in printed] == lines
    assert all(any(form.match(line) for form in FORMS) for line in printed), printed
