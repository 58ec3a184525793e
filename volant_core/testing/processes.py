"""Finding and reaping the processes a test caused, by what their command line mentions."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

#: A Python program (for ``python -c``) that waits, using no CPU, until a signal ends it: a stand-in
#: for a long-running workload or VMM (SIGTERM and SIGKILL end it; SIGINT raises KeyboardInterrupt).
IDLE_PROGRAM = "import signal; signal.pause()"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def cpu_seconds(pid: int) -> float:
    """User and system CPU time process ``pid`` used so far (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_used_over(pid: int, window: float) -> float:
    """CPU seconds process ``pid`` uses over the next ``window`` seconds (a spinning loop uses them all)."""
    before = cpu_seconds(pid)
    time.sleep(window)  # the measurement window, not a synchronisation
    return cpu_seconds(pid) - before


def default_sigint() -> None:
    """``preexec_fn`` for a child the test will interrupt: give it the default SIGINT disposition.

    A test run started with SIGINT ignored (under ``nohup``, or as a shell's background job)
    passes that on: an ignored signal stays ignored across ``exec``, and a Python child then
    installs no KeyboardInterrupt handler, so the SIGINT the test sends does nothing.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


#: How long :func:`signal_burst` signals: long enough to land signals inside a running handler.
SIGNAL_BURST_S = 0.5


def signal_burst(pid: int, sig: int, seconds: float = SIGNAL_BURST_S) -> None:
    """Send ``sig`` to ``pid`` over and over for ``seconds``, so that some arrive while the handler
    of an earlier one runs. A process that ends meanwhile ends the burst.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return


def processes_mentioning(text: str) -> list[int]:
    """Pids of the live processes whose argv contains ``text`` (not this process)."""
    needle = os.fsencode(text)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in argv and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def kill_mentioning(text: str) -> list[int]:
    """SIGKILL every process :func:`processes_mentioning` finds, and their descendants (a kestrel run
    on the host leaves its workload otherwise: its command line need not mention ``text``); return
    their pids.
    """
    found = processes_mentioning(text)
    pids = list(dict.fromkeys([*found, *descendants(*found)]))
    kill_all(pids)
    return pids


def kill_all(pids: list[int]) -> None:
    """SIGKILL each of ``pids`` that still runs."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def descendants(*roots: int) -> list[int]:
    """Pids of the live children of the ``roots``, their children and so on (parents before
    children), from one reading of ``/proc``.
    """
    if not roots:
        return []
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    pending = [child for root in roots for child in children.get(root, ())]
    while pending:
        child = pending.pop(0)
        found.append(child)
        pending.extend(children.get(child, ()))
    return found


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A new directory under the temporary directory, its name short (socket paths under it must
    stay short): at the end every process whose command line names it is killed, then it is removed.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        kill_mentioning(str(path))
        shutil.rmtree(path, ignore_errors=True)
