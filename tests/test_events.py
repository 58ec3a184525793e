"""The event log: ids only grow, and the table stays bounded."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from volant_core.daemon import PRUNE_EVENTS_EVERY
from volant_core.events import Event
from volant_core.testing.daemon import running_daemon


def test_event_ids_grow_and_old_events_are_pruned() -> None:
    with running_daemon(events_keep=100) as api:
        bus = api.daemon.orchestrator.events
        ids = [bus.publish(Event(type="VM_LOG", name="x", message=str(i))).id for i in range(350)]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        kept = api.daemon.store.events.since(0)
        assert 100 <= len(kept) < 100 + PRUNE_EVENTS_EVERY
        assert kept[-1].id == ids[-1]
        assert api.daemon.store.events.latest_id() == ids[-1]


def test_an_events_json_form_holds_every_field_and_is_its_own_copy() -> None:
    event = Event(type="VM_RUNNING", name="web", status="running", message="up", data={"pid": 7}, id=3)
    shown = event.to_dict()
    assert shown == {f.name: getattr(event, f.name) for f in dataclasses.fields(Event)}
    shown["data"]["pid"] = 8  # a plugin's or client's change to its copy
    assert event.data == {"pid": 7}


def test_a_failing_listener_is_logged_and_the_others_still_get_the_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with running_daemon() as api:
        bus = api.daemon.orchestrator.events
        seen: list[int] = []

        def broken(event: Event) -> None:
            raise RuntimeError("listener bug")

        bus.add_listener(broken)
        bus.add_listener(lambda event: seen.append(event.id))
        published = bus.publish(Event(type="VM_LOG", name="x", message="hello"))
        assert seen == [published.id]
        failures = [
            r for r in caplog.records if r.name == "volant_core.events" and r.levelno == logging.ERROR
        ]
        assert [r.getMessage() for r in failures] == [f"event listener {broken!r} failed on VM_LOG"]
        assert failures[0].exc_info is not None and "listener bug" in str(failures[0].exc_info[1])
