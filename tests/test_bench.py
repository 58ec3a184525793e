"""The benchmarks under ``bench/`` keep working: each runs with a few rounds and prints its
comparison lines. What they measure is never asserted (times belong to the benchmarks)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench"
#: One comparison line: ``<what>: ratio <r>  (median ... ms against ... ms, +... ms, N rounds)``.
LINE = re.compile(
    r"^[^:]+: ratio \d+\.\d\d  \(median [\d.]+ ms against [\d.]+ ms, [+-][\d.]+ ms, \d+ rounds\)"
)
#: A CPU line: ``<what>, CPU ...: <t> ms through the API against <t> ms direct, +<t> ms``.
CPU_LINE = re.compile(
    r"^[^:]+, CPU [^:]+: [\d.]+ ms through the API against [\d.]+ ms direct, [+-][\d.]+ ms$"
)


@pytest.mark.parametrize(
    ("script", "options", "lines"),
    [
        (
            "agent_proxy.py",
            ["--rounds", "3", "--mib", "1"],
            [
                "small request",
                "small request, CPU in this process (client and daemon; kestrel runs apart)",
                "1 MiB download",
            ],
        ),
        ("create_to_running.py", ["--rounds", "2"], ["create to running, then delete"]),
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
    assert all(LINE.match(line) or CPU_LINE.match(line) for line in printed), printed
