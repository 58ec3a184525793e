"""adopt() refuses processes that are not this VM's QEMU (no guest needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from volant_qemu.launcher import QemuLauncher

from volant_core.launch import LaunchSpec

SpecFactory = Callable[..., LaunchSpec]


@pytest.fixture
def sleeper(vm_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running process that is not QEMU but mentions the VM's pidfile, which names it."""
    vm_dir.mkdir(parents=True)
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", str(vm_dir / "qemu.pid")]
    )
    (vm_dir / "qemu.pid").write_text(f"{process.pid}\n")
    try:
        yield process
    finally:
        process.kill()
        process.wait(10)


def test_refuses_a_foreign_process(
    vm_dir: Path, make_spec: SpecFactory, sleeper: subprocess.Popen[bytes]
) -> None:
    assert QemuLauncher().adopt(make_spec(vm_dir, Path("/k")), sleeper.pid) is None


def test_refuses_ourselves(vm_dir: Path, make_spec: SpecFactory) -> None:
    assert QemuLauncher().adopt(make_spec(vm_dir, Path("/k")), os.getpid()) is None


def test_refuses_a_process_that_is_gone(vm_dir: Path, make_spec: SpecFactory) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    assert QemuLauncher().adopt(make_spec(vm_dir, Path("/k")), int(finished.stdout)) is None
