"""The test suite's own clean-up helper (``volant_core.testing.processes``): what it kills."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from volant_core.testing.processes import descendants, kill_mentioning, pid_alive
from volant_core.testing.waiting import eventually


def test_kill_mentioning_kills_the_descendants_whose_command_lines_do_not_mention_it() -> None:
    """A kestrel run on the host is named by its socket path; its workload, its child in a session
    of its own, is not: both must go, or every test that kills kestrel leaks the workload.
    """
    marker = f"volant-test-parent-{uuid.uuid4().hex}"
    parent = subprocess.Popen(["/bin/sh", "-c", "setsid sleep 300 & wait", marker])
    try:
        (child,) = eventually(lambda: descendants(parent.pid), "the parent's child started")
        assert marker.encode() not in Path(f"/proc/{child}/cmdline").read_bytes()
        assert kill_mentioning(marker) == [parent.pid, child]
        parent.wait(30)
        eventually(lambda: not pid_alive(child), "the child ends with its parent")
    finally:
        parent.kill()
        parent.wait(30)
