"""The real ``volar`` and ``volantd`` executables of this environment, for tests running them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: The console scripts installed beside the running interpreter.
VOLAR = Path(sys.executable).with_name("volar")
VOLANTD = Path(sys.executable).with_name("volantd")


def run_volar(api_url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``volar --api api_url ARGS...`` to completion, capturing its output as text."""
    return subprocess.run(
        [str(VOLAR), "--api", api_url, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
