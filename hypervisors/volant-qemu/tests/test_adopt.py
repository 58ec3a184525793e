"""adopt() takes over this VM's running QEMU and refuses any other process (no guest needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from volant_qemu.command import build_command
from volant_qemu.launcher import QemuLauncher
from volant_qemu.paths import VmPaths

from volant_core.launch import LaunchSpec
from volant_core.processes import AdoptedProcess
from volant_core.testing.processes import IDLE_PROGRAM
from volant_core.testing.waiting import eventually

SpecFactory = Callable[..., LaunchSpec]


@pytest.fixture
def sleeper(vm_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running process that is not QEMU but mentions the VM's pidfile, which names it."""
    vm_dir.mkdir(parents=True)
    process = subprocess.Popen([sys.executable, "-c", IDLE_PROGRAM, str(vm_dir / "qemu.pid")])
    (vm_dir / "qemu.pid").write_text(f"{process.pid}\n")
    try:
        yield process
    finally:
        process.kill()
        process.wait(10)


#: The options that load a guest: left out, QEMU starts (paused) without one.
BOOT_OPTIONS = frozenset({"-kernel", "-initrd", "-append"})


@pytest.fixture
def vm_qemu(
    qemu_binary: str, vm_dir: Path, make_spec: SpecFactory, garbage_kernel: Path
) -> Iterator[tuple[LaunchSpec, subprocess.Popen[bytes]]]:
    """A VM's spec and a QEMU started with its argv, paused (``-S``) and without the kernel options."""
    spec = make_spec(vm_dir, garbage_kernel)
    argv = build_command(spec, accel="tcg", binary=qemu_binary)
    dropped = {i + offset for i, arg in enumerate(argv) if arg in BOOT_OPTIONS for offset in (0, 1)}
    kept = [arg for i, arg in enumerate(argv) if i not in dropped]
    vm_dir.mkdir(parents=True)
    process = subprocess.Popen([*kept, "-S"], stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        paths = VmPaths(vm_dir)
        eventually(  # the pidfile comes first, the sockets after it
            lambda: paths.pidfile_pid() == process.pid and paths.qmp_socket.exists(), "QEMU's pidfile and QMP"
        )
        yield spec, process
    finally:
        process.kill()
        process.wait(10)


def test_adopts_the_vms_running_qemu(vm_qemu: tuple[LaunchSpec, subprocess.Popen[bytes]]) -> None:
    spec, process = vm_qemu
    adopted = QemuLauncher().adopt(spec, process.pid)
    assert adopted is not None
    assert (adopted.pid, adopted.accelerator) == (process.pid, "tcg")
    assert adopted.alive() and adopted.wait(0) is None
    with adopted.qmp() as session:  # the adopted instance controls that QEMU
        assert session.execute("query-status")["status"] == "prelaunch"
    adopted.kill()
    assert process.wait(10) == -9
    assert not adopted.alive()


def test_refuses_a_foreign_process(
    vm_dir: Path, make_spec: SpecFactory, sleeper: subprocess.Popen[bytes]
) -> None:
    assert QemuLauncher().adopt(make_spec(vm_dir, Path("/k")), sleeper.pid) is None


def test_refuses_ourselves(vm_dir: Path, make_spec: SpecFactory) -> None:
    assert QemuLauncher().adopt(make_spec(vm_dir, Path("/k")), os.getpid()) is None


def test_refuses_a_process_that_is_gone(vm_dir: Path, make_spec: SpecFactory) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    assert QemuLauncher().adopt(make_spec(vm_dir, Path("/k")), int(finished.stdout)) is None


def test_a_launch_cut_short_is_killed_but_never_a_reused_pid(vm_dir: Path, make_spec: SpecFactory) -> None:
    """With no pid (volantd died during the launch), the spawn record's process is killed, if it is
    still the one spawned (same start time); a process that merely got its pid is left alone.
    """
    vm_dir.mkdir(parents=True)
    paths = VmPaths(vm_dir)
    spec = make_spec(vm_dir, Path("/k"))
    spawned = subprocess.Popen([sys.executable, "-c", IDLE_PROGRAM])
    try:
        attached = AdoptedProcess.attach(spawned.pid)
        assert attached is not None
        paths.record_spawn(spawned.pid, str(int(attached.start_time) + 1))  # another process's start
        assert QemuLauncher().adopt(spec, None) is None
        assert spawned.poll() is None, "a process with another start time is not the one spawned"

        paths.record_spawn(spawned.pid, attached.start_time)
        assert QemuLauncher().adopt(spec, None) is None
        assert spawned.wait(10) == -9
        assert not paths.spawn_record.exists()
    finally:
        spawned.kill()
        spawned.wait(10)
