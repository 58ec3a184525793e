"""How long ``volar`` takes to start: ``volar --help`` and ``volar vms list`` (against an address where
no volantd listens, so what is timed is volar's start and one refused connection), each against
``python -c pass`` with the same interpreter, run moments before.

Each run is a new process, as a user's is. Bytecode is written and reused (the first, uncounted
round writes it), as for an installed package, even when the caller's environment sets
``PYTHONDONTWRITEBYTECODE``. Issue 15's target is 0.25 s from the shell to the command's work.
Usage: ``python bench/cli_startup.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from timing import report, samples

from volant_core.testing.waiting import free_port

#: Issue 15's target for a volar command's start, in milliseconds.
TARGET_MS = 250
VOLAR = Path(sys.executable).with_name("volar")


def run(argv: list[str], env: dict[str, str]) -> None:
    """Run ``argv`` to its end, its output discarded (a failure is fine: an unreachable volantd)."""
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def cpu_ms(step: Callable[[], object], rounds: int) -> float:
    """Milliseconds of CPU (user and system) the child processes of one ``step`` take, on average:
    unlike the wall clock, it does not grow with the wait for a core on a loaded machine.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(rounds):
        step()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used * 1000 / rounds


def main() -> None:
    """Time each command against ``python -c pass`` and print the ratios and the starts."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    rounds = parser.parse_args().rounds
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    nowhere = f"http://127.0.0.1:{free_port()}"
    commands = {
        "volar --help": [str(VOLAR), "--help"],
        "volar vms list (no volantd)": [str(VOLAR), "--api", nowhere, "vms", "list"],
    }

    def python_pass() -> None:
        run([sys.executable, "-c", "pass"], env)

    for what, argv in commands.items():

        def command(argv: list[str] = argv) -> None:
            run(argv, env)

        baseline = samples(python_pass, rounds)
        measured = samples(command, rounds)
        report(what, baseline, measured)
        start_ms = statistics.median(measured) * 1000
        print(f"{what}, start: {start_ms:.0f} ms (target <= {TARGET_MS} ms)", flush=True)
        mine, base = cpu_ms(command, rounds), cpu_ms(python_pass, rounds)
        print(f"{what}, CPU: {mine:.0f} ms against {base:.0f} ms for python -c pass", flush=True)


if __name__ == "__main__":
    main()
