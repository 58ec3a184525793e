"""kestrel's :class:`SignalSafeEvent`: set by signal handlers that may run inside one another, and
leaving no descriptor behind."""

from __future__ import annotations

import gc
import os
import signal
import threading
from collections.abc import Iterator

import pytest

from volant_core.agent.wakeup import SignalSafeEvent
from volant_core.testing.processes import signal_burst


@pytest.fixture
def raised_by_sigusr1() -> Iterator[SignalSafeEvent]:
    """An event that a SIGUSR1 handler of this process sets (the handler is restored after)."""
    event = SignalSafeEvent()
    previous = signal.signal(signal.SIGUSR1, lambda _signum, _frame: event.set())
    try:
        yield event
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_a_burst_of_signals_sets_it_and_wakes_the_main_thread(raised_by_sigusr1: SignalSafeEvent) -> None:
    sender = threading.Thread(target=signal_burst, args=(os.getpid(), signal.SIGUSR1))
    sender.start()
    try:
        while not raised_by_sigusr1.wait(0.5):  # the handler runs when the main thread does
            pass
        assert raised_by_sigusr1.is_set()
    finally:
        sender.join()


def test_clear_lowers_it_until_the_next_set() -> None:
    event = SignalSafeEvent()
    event.set()
    event.set()  # two wake-ups pending: clear drops both
    event.clear()
    assert not event.is_set() and not event.wait(0)
    threading.Timer(0.05, event.set).start()
    assert event.wait(30)


def test_a_dropped_event_closes_its_pipe() -> None:
    gc.collect()  # the events of earlier tests too
    open_before = len(os.listdir("/proc/self/fd"))
    for _ in range(100):
        SignalSafeEvent().set()
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == open_before
