"""Progress for a person at a terminal: a spinner line while waiting, a bar per long task.

Everything is drawn on stderr, and only when stderr is a terminal: piped or redirected runs
(scripts, ``-o json``, ``-q``) print exactly what they printed before, and stdout never carries
progress.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

import click

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

#: Spinner frames (ASCII, so any terminal encoding shows them).
FRAMES = "|/-\\"
#: Seconds between two spinner frames.
FRAME_SECONDS = 0.1
#: Carriage return, then erase to the end of the line.
_ERASE = "\r\x1b[K"


def terminal() -> TextIO | None:
    """stderr when it is a terminal (progress is drawn there), else None (nothing is drawn)."""
    stream = sys.stderr
    return stream if stream.isatty() else None


class StatusLine:
    """One stderr line rewritten in place: a turning spinner, a short text and the seconds so far."""

    def __init__(self, stream: TextIO | None) -> None:
        """Draw on ``stream``; None draws nothing (then :meth:`pause` only sleeps)."""
        self._stream = stream
        self._text = ""
        self._frame = 0
        self._started = time.monotonic()

    def show(self, text: str) -> None:
        """Replace the text and redraw."""
        self._text = text
        self._draw()

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, turning the spinner meanwhile."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(FRAME_SECONDS, left))
            self._frame += 1
            self._draw()

    def erase(self) -> None:
        """Remove the line (the cursor is back at its start)."""
        self._write(_ERASE)

    def _draw(self) -> None:
        elapsed = int(time.monotonic() - self._started)
        self._write(f"{_ERASE}{FRAMES[self._frame % len(FRAMES)]} {self._text} ({elapsed}s)")

    def _write(self, text: str) -> None:
        if self._stream is not None:
            self._stream.write(text)
            self._stream.flush()


@contextlib.contextmanager
def status_line() -> Iterator[StatusLine]:
    """A :class:`StatusLine` on stderr (drawing nothing unless it is a terminal), erased on exit."""
    line = StatusLine(terminal())
    try:
        yield line
    finally:
        line.erase()


#: Cells of the bar :func:`byte_bar` draws.
BAR_WIDTH = 20


def byte_bar(done: int, total: int | None) -> str:
    """``[#####---------------] 1.2 MiB of 5.0 MiB``; without a total, the bytes so far."""
    if not total:
        return f"{human_size(done)} so far"
    filled = min(BAR_WIDTH, BAR_WIDTH * done // total)
    return f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {human_size(done)} of {human_size(total)}"


def human_size(count: int) -> str:
    """``count`` bytes as people read them: ``512 B``, ``390.6 KiB``, ``1.2 GiB``."""
    if count < 1024:
        return f"{count} B"
    size = count / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


class TaskBars:
    """Draws ``(task, done, total)`` reports (such as :data:`volant_core.guest.Progress`) as one
    click progress bar per task, labelled with the task; a bar ends when its task is done.
    """

    def __init__(self, stream: TextIO) -> None:
        """Draw on ``stream`` (a terminal)."""
        self._stream = stream
        self._task: str | None = None
        self._bar: ProgressBar[int] | None = None

    def __call__(self, task: str, done: int, total: int) -> None:
        """Move the bar of ``task`` to ``done`` of ``total`` (starting it if the task is new)."""
        if task != self._task:
            self.close()
            self._task = task
            self._bar = click.progressbar(length=total, label=task, file=self._stream)
            self._bar.render_progress()
        if self._bar is None:  # this task finished already
            return
        self._bar.update(done - self._bar.pos)
        if done >= total:
            self.close()

    def close(self) -> None:
        """Finish the open bar, if any (the next output starts on a new line)."""
        if self._bar is not None:
            self._bar.render_finish()
            self._bar = None


@contextlib.contextmanager
def task_bars() -> Iterator[TaskBars | None]:
    """:class:`TaskBars` on stderr when it is a terminal, else None; any open bar is finished on exit."""
    stream = terminal()
    if stream is None:
        yield None
        return
    bars = TaskBars(stream)
    try:
        yield bars
    finally:
        bars.close()
