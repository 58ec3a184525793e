"""The QMP client against a real (paused, kernel-less) QEMU."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from volant_qemu.qmp import QmpClient, QmpError


def connect_when_ready(path: Path, process: subprocess.Popen[bytes], timeout: float = 15) -> QmpClient:
    """A QMP session once QEMU listens on ``path`` (polled, bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, "QEMU exited"
        try:
            return QmpClient(path, timeout=2)
        except QmpError:
            if time.monotonic() > deadline:
                raise
            try:
                process.wait(0.05)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def paused_qemu(qemu_binary: str, vm_dir: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A QEMU that never runs a guest (``-S``), with QMP on a socket in ``vm_dir``."""
    vm_dir.mkdir(parents=True)
    socket_path = vm_dir / "qmp.sock"
    argv = [qemu_binary, "-M", "q35", "-accel", "tcg", "-nodefaults", "-display", "none", "-S"]
    argv += ["-qmp", f"unix:{socket_path},server=on,wait=off"]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        yield process, socket_path
    finally:
        process.kill()
        process.wait(10)


def test_greeting_and_query_status(paused_qemu: tuple[subprocess.Popen[bytes], Path]) -> None:
    process, path = paused_qemu
    with connect_when_ready(path, process) as qmp:
        assert "version" in qmp.greeting["QMP"]
        status = qmp.execute("query-status")
        assert (status["status"], status["running"]) == ("prelaunch", False)


def test_error_reply_raises(paused_qemu: tuple[subprocess.Popen[bytes], Path]) -> None:
    process, path = paused_qemu
    with connect_when_ready(path, process) as qmp:
        with pytest.raises(QmpError, match="CommandNotFound"):
            qmp.execute("no-such-command")
        assert qmp.execute("query-status")["running"] is False


def test_events_are_skipped(paused_qemu: tuple[subprocess.Popen[bytes], Path]) -> None:
    process, path = paused_qemu
    with connect_when_ready(path, process) as qmp:
        qmp.execute("cont")  # emits a RESUME event before or after the reply
        assert qmp.execute("query-status")["status"] == "running"
        qmp.execute("quit")
    assert process.wait(10) == 0


def test_missing_socket_raises(tmp_path: Path) -> None:
    with pytest.raises(QmpError, match="cannot talk to QMP"):
        QmpClient(tmp_path / "absent.sock", timeout=1)
