"""A thread pool that grows on demand up to a bound, with daemon threads.

The API runs each request's blocking work (the WSGI app, a stream's next
chunk) in a thread, and the orchestrator each VMM's supervisor.
:class:`concurrent.futures.ThreadPoolExecutor` would do, but its threads are
joined at interpreter exit, and a stream, a console session or a supervisor
blocked in a read would keep volantd from exiting. A call given to an idle
thread starts at once; only a new thread is waited for while it starts.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")

_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonThreadPool(Executor):
    """Runs submitted calls in up to ``max_threads`` daemon threads, started when none is idle.

    Idle threads wait for the next call; calls beyond the bound wait in a queue.
    """

    def __init__(self, max_threads: int, name: str) -> None:
        """A pool of at most ``max_threads`` threads named ``name-N``."""
        self.max_threads = max_threads
        self._name = name
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` in a pool thread; its future."""
        future: Future[T] = Future()
        self._work.put((future, fn, args, kwargs))
        if not self._idle.acquire(blocking=False):
            with self._lock:
                if len(self._threads) < self.max_threads:
                    thread = threading.Thread(
                        target=self._serve, name=f"{self._name}-{len(self._threads)}", daemon=True
                    )
                    self._threads.append(thread)
                    thread.start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Let idle threads end; calls already running go on (their threads are daemons)."""
        for _ in range(len(self._threads)):
            self._work.put(None)

    def _serve(self) -> None:
        while (work := self._work.get()) is not None:
            future, fn, args, kwargs = work
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as error:  # handed to the waiter, as ThreadPoolExecutor does
                    future.set_exception(error)
                del work, future, fn, args, kwargs  # nothing of a finished call stays referenced while idle
            self._idle.release()
