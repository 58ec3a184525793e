"""The real ``volar`` and ``volantd`` executables of this environment, for tests running them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

#: The console scripts installed beside the running interpreter.
VOLAR = Path(sys.executable).with_name("volar")
VOLANTD = Path(sys.executable).with_name("volantd")


def run_volar(
    api_url: str, *args: str, timeout: float = 120, terminal: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``volar --api api_url ARGS...`` to completion, capturing its output as text.

    With ``terminal``, stderr is a terminal, as in an interactive shell (see :func:`run_on_terminal`).
    """
    argv = [str(VOLAR), "--api", api_url, *args]
    if terminal:
        return run_on_terminal(argv, timeout=timeout)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def run_on_terminal(argv: Sequence[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to completion with stderr on a new pseudo-terminal and stdout on a pipe.

    The result's ``stderr`` is everything the terminal received, control characters included (the
    terminal turns each ``\\n`` into ``\\r\\n``).
    """
    controller, terminal = os.openpty()
    received: list[bytes] = []

    def read_terminal() -> None:
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:  # EIO: the last process holding the terminal closed it
                return
            if not data:
                return
            received.append(data)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal, text=True
            )
        finally:
            os.close(terminal)
        try:
            stdout, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
        reader.join(timeout)
    finally:
        os.close(controller)
    shown = b"".join(received).decode(errors="replace")
    return subprocess.CompletedProcess(list(argv), process.returncode, stdout, shown)
