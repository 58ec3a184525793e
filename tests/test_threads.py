"""The daemon's thread pool: bounded, last idle thread first, idle threads end on shutdown."""

from __future__ import annotations

import threading

from volant_core.threads import DaemonThreadPool

WAIT_S = 10


def _current_thread() -> threading.Thread:
    return threading.current_thread()


def test_the_thread_that_went_idle_last_takes_the_next_call() -> None:
    pool = DaemonThreadPool(4, "t")
    release_first, release_second = threading.Event(), threading.Event()
    first = pool.submit(lambda: (release_first.wait(WAIT_S), _current_thread())[1])
    second = pool.submit(lambda: (release_second.wait(WAIT_S), _current_thread())[1])
    release_second.set()
    second_thread = second.result(WAIT_S)
    release_first.set()
    first_thread = first.result(WAIT_S)
    assert first_thread is not second_thread
    # the first call's thread finished last: consecutive calls now all run there
    ran_in = [pool.submit(_current_thread).result(WAIT_S) for _ in range(5)]
    assert ran_in == [first_thread] * 5
    pool.shutdown()


def test_calls_beyond_the_bound_wait_for_a_thread_then_run_in_order() -> None:
    pool = DaemonThreadPool(1, "t")
    release = threading.Event()
    order: list[str] = []
    blocking = pool.submit(lambda: (release.wait(WAIT_S), order.append("first")))
    queued = [pool.submit(order.append, name) for name in ("second", "third")]
    assert not any(future.done() for future in queued)
    release.set()
    blocking.result(WAIT_S)
    for future in queued:
        future.result(WAIT_S)
    assert order == ["first", "second", "third"]
    assert len({pool.submit(_current_thread).result(WAIT_S) for _ in range(3)}) == 1
    pool.shutdown()


def test_a_call_that_raises_hands_its_error_to_the_caller_and_the_thread_serves_on() -> None:
    pool = DaemonThreadPool(1, "t")
    failed = pool.submit(int, "not a number")
    assert isinstance(failed.exception(WAIT_S), ValueError)
    assert pool.submit(int, "7").result(WAIT_S) == 7
    pool.shutdown()


def test_shutdown_ends_an_idle_thread() -> None:
    pool = DaemonThreadPool(1, "t")
    idle = pool.submit(_current_thread).result(WAIT_S)
    pool.shutdown()
    idle.join(WAIT_S)
    assert not idle.is_alive()


def test_shutdown_lets_running_and_queued_calls_finish_then_their_threads_end() -> None:
    pool = DaemonThreadPool(2, "t")
    release_first, release_second = threading.Event(), threading.Event()
    first = pool.submit(lambda: (release_first.wait(WAIT_S), _current_thread())[1])
    second = pool.submit(lambda: (release_second.wait(WAIT_S), _current_thread())[1])
    queued = [pool.submit(_current_thread) for _ in range(2)]
    pool.shutdown()
    release_first.set()
    first_thread = first.result(WAIT_S)
    assert [future.result(WAIT_S) for future in queued] == [first_thread] * 2
    release_second.set()
    second_thread = second.result(WAIT_S)
    for thread in (first_thread, second_thread):
        thread.join(WAIT_S)
        assert not thread.is_alive()
