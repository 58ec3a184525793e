"""A thread pool that grows on demand up to a bound, with daemon threads.

The API runs each request's blocking work (the WSGI app, a stream's next
chunk) in a thread, and the orchestrator each VMM's supervisor.
:class:`concurrent.futures.ThreadPoolExecutor` would do, but its threads are
joined at interpreter exit, and a stream, a console session or a supervisor
blocked in a read would keep volantd from exiting. A call given to an idle
thread starts at once; only a new thread is waited for while it starts.

The thread that went idle last takes the next call (last in, first out). Requests one after the
other then run in one thread, whose SQLite connection keeps its page cache: SQLite drops a
connection's cache whenever another connection wrote, so handing consecutive requests to the
threads in turn made each one read its pages again (issue 11).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")

_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class _Handover:
    """Where an idle thread waits for its next call (None: end)."""

    def __init__(self) -> None:
        self._ready = threading.Lock()
        self._ready.acquire()
        self._work: _Work | None = None

    def give(self, work: _Work | None) -> None:
        """Hand ``work`` to the waiting thread."""
        self._work = work
        self._ready.release()

    def take(self) -> _Work | None:
        """Wait for the call handed over."""
        self._ready.acquire()
        work, self._work = self._work, None
        return work


class DaemonThreadPool(Executor):
    """Runs submitted calls in up to ``max_threads`` daemon threads, started when none is idle.

    The most recently idle thread takes the next call; calls beyond the bound wait in a queue.
    """

    def __init__(self, max_threads: int, name: str) -> None:
        """A pool of at most ``max_threads`` threads named ``name-N``."""
        self.max_threads = max_threads
        self._name = name
        self._lock = threading.Lock()
        self._idle: list[_Handover] = []  # a stack: the last one idle is handed the next call
        self._queued: collections.deque[_Work] = collections.deque()
        self._started = 0
        self._ending = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` in a pool thread; its future."""
        future: Future[T] = Future()
        work: _Work = (future, fn, args, kwargs)
        with self._lock:
            if self._idle:
                self._idle.pop().give(work)
            elif self._started < self.max_threads:
                thread = threading.Thread(
                    target=self._serve, args=(work,), name=f"{self._name}-{self._started}", daemon=True
                )
                self._started += 1
                thread.start()
            else:
                self._queued.append(work)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Let idle threads end; calls already running go on (their threads are daemons), then
        the calls queued.
        """
        with self._lock:
            self._ending = True
            idle, self._idle = self._idle, []
        for handover in idle:
            handover.give(None)

    def _serve(self, work: _Work | None) -> None:
        handover = _Handover()
        while work is not None:
            future, fn, args, kwargs = work
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as error:  # handed to the waiter, as ThreadPoolExecutor does
                    future.set_exception(error)
            del work, future, fn, args, kwargs  # nothing of a finished call stays referenced while idle
            with self._lock:
                if self._queued:
                    work = self._queued.popleft()
                    continue
                if self._ending:
                    return
                self._idle.append(handover)
            work = handover.take()
