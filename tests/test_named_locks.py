"""Per-VM locks: operations on one name exclude each other, and a name's lock is forgotten once
nobody holds or waits for it (the table does not grow with every name ever asked for).
"""

from __future__ import annotations

import threading

from volant_core.orchestrator.locks import NamedLocks
from volant_core.testing.daemon import RunningDaemon


def test_requests_for_many_unknown_vms_leave_no_lock_behind(host_api: RunningDaemon) -> None:
    for number in range(50):
        assert host_api.request("GET", f"/api/v1/vms/ghost-{number}/config").status == 404
        assert host_api.request("POST", f"/api/v1/vms/ghost-{number}/stop").status == 404
    # the orchestrator's table of per-VM locks (private: nothing else shows its size)
    assert len(host_api.daemon.orchestrator._locks) == 0


def test_a_lock_excludes_while_held_and_is_forgotten_after_its_last_user() -> None:
    locks = NamedLocks(threading.RLock)
    inside = threading.Event()
    leave = threading.Event()
    entered_second = threading.Event()

    def first() -> None:
        with locks("a"), locks("a"):  # re-entered by the same thread
            inside.set()
            leave.wait(30)

    def second() -> None:
        with locks("a"):
            entered_second.set()

    holder = threading.Thread(target=first)
    holder.start()
    assert inside.wait(30)
    waiter = threading.Thread(target=second)
    waiter.start()
    with locks("b"):  # another name is not held up
        assert len(locks) == 2
    assert not entered_second.is_set()
    leave.set()
    holder.join(30)
    waiter.join(30)
    assert entered_second.is_set()
    assert len(locks) == 0


def test_try_hold_refuses_a_held_name_and_gives_it_back() -> None:
    locks = NamedLocks(threading.Lock)
    release = locks.try_hold("console")
    assert release is not None
    assert locks.try_hold("console") is None
    release()
    assert len(locks) == 0
    again = locks.try_hold("console")
    assert again is not None
    again()
