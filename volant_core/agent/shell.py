"""A root shell on the guest's serial console, kept running for ``volar vms console``.

The shell is started in its own session with the console as its controlling
terminal (busybox ``setsid -c``), so job control and Ctrl-C work as on any
terminal. When it exits (``exit``, Ctrl-D) a new one is started, after a pause
that doubles while shells keep dying quickly.
"""

from __future__ import annotations

import os
import time

from .console import say
from .constants import BUSYBOX, CMDLINE_CONSOLE_KEY, CONSOLE_TTY
from .manifest import cmdline_value
from .reaper import Reaper

#: Pause before the first restart of a shell that exited, and the longest pause.
RESTART_PAUSE_S = (1.0, 10.0)
#: A shell that ran this long is considered to have ended normally: the pause starts over.
SETTLED_AFTER_S = 10.0
#: Environment of the console shell.
SHELL_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "TERM": "vt100"}


def console_shell_enabled(cmdline: str) -> bool:
    """Whether the kernel command line leaves the console shell on (``volant.console=off`` turns it off)."""
    return cmdline_value(cmdline, CMDLINE_CONSOLE_KEY) != "off"


def keep_console_shell(reaper: Reaper, tty: str = CONSOLE_TTY) -> None:
    """Run a shell on ``tty`` forever, restarting it whenever it exits (call in a thread)."""
    first_pause, longest_pause = RESTART_PAUSE_S
    pause = first_pause
    while True:
        started = time.monotonic()
        fd = os.open(tty, os.O_RDWR | os.O_NOCTTY)
        try:
            _process, child = reaper.spawn(
                [BUSYBOX, "setsid", "-c", BUSYBOX, "sh"],
                stdin=fd,
                stdout=fd,
                stderr=fd,
                cwd="/",
                env=SHELL_ENV,
            )
        finally:
            os.close(fd)
        child.wait()
        if time.monotonic() - started >= SETTLED_AFTER_S:
            pause = first_pause
        say(f"kestrel: console shell exited ({child.returncode}); a new one in {pause:g} s")
        time.sleep(pause)
        pause = min(pause * 2, longest_pause)
