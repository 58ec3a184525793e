"""``/api/v1/events/vms``: the event stream, as Server-Sent Events that a client can resume.

Framing (see docs/adr/0012-event-stream.md):

* first ``retry: <ms>``, the reconnect delay a browser's ``EventSource`` uses;
* each event as ``id: <id>``, ``event: <type>``, ``data: <Event.to_dict() as JSON>`` and a blank line;
* ``: heartbeat`` after every :attr:`EventStream.heartbeat` seconds without a write, which also
  finds clients that went away (writing to them fails);
* ``event: GAP`` (no id) when the events a client asks to resume from were pruned or never existed;
* ``event: OVERFLOW`` (no id), then the end of the response, when the client fell more than
  :attr:`EventStream.queue_size` events behind.

The ``Last-Event-ID`` header, or ``?since=ID`` for clients that cannot set headers, replays the stored
events after that id and then continues live, without gap or duplicate. ``?type=`` and ``?name=``
(comma-separated or repeated) keep only the events of those types and VMs.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import falcon

from volant_core.api.openapi.operations import operation
from volant_core.errors import ValidationError
from volant_core.events import Event, EventBus, EventType
from volant_core.store.events import EventRepository

#: Reconnect delay suggested to clients, in milliseconds.
RETRY_MS = 2000
#: Stored events read per query while replaying.
REPLAY_PAGE = 500
#: The comment written when nothing else was for a heartbeat interval.
HEARTBEAT = b": heartbeat\n\n"
#: Control events: they carry no id, so a client's Last-Event-ID stays the last real event's.
GAP = "GAP"
OVERFLOW = "OVERFLOW"


def frame(event_type: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    """One SSE frame: optional ``id:``, ``event:``, one ``data:`` line of JSON, and a blank line."""
    lines = [] if event_id is None else [f"id: {event_id}"]
    lines += [f"event: {event_type}", f"data: {json.dumps(data)}", "", ""]
    return "\n".join(lines).encode()


def event_frame(event: Event) -> bytes:
    """The frame of a published event."""
    return frame(event.type, event.to_dict(), event.id)


@dataclass(frozen=True)
class EventFilter:
    """Which events a client wants; None means any."""

    types: frozenset[str] | None = None
    names: frozenset[str] | None = None

    @classmethod
    def from_request(cls, req: falcon.Request) -> EventFilter:
        """``?type=`` and ``?name=``, comma-separated and/or repeated; unknown types are refused."""
        types = _param_set(req, "type", str.upper)
        if types is not None and (unknown := types - set(EventType)):
            message = f"type: unknown event type {', '.join(sorted(unknown))}; known: {', '.join(EventType)}"
            raise ValidationError(message, field="type")
        return cls(types, _param_set(req, "name", str))

    def matches(self, event: Event) -> bool:
        """Whether ``event`` passes."""
        return (self.types is None or event.type in self.types) and (
            self.names is None or event.name in self.names
        )


def _param_set(req: falcon.Request, name: str, normalize: Callable[[str], str]) -> frozenset[str] | None:
    """The values of query parameter ``name`` (comma-separated and/or repeated); None if there are none."""
    values = req.get_param_as_list(name) or []
    parts = (part.strip() for value in values for part in value.split(","))
    return frozenset(normalize(part) for part in parts if part) or None


def resume_point(req: falcon.Request) -> int | None:
    """The id a client resumes after: ``Last-Event-ID`` (what ``EventSource`` sends on reconnect)
    wins over ``?since=``; None when neither is given (live events only).
    """
    for source, raw in (
        ("Last-Event-ID", req.get_header("Last-Event-ID")),
        ("since", req.get_param("since")),
    ):
        value = (raw or "").strip()
        if not value:
            continue
        if not (value.isascii() and value.isdigit()):  # "²" is a digit to str.isdigit, not to int()
            message = f"{source}: {raw!r} is not an event id (a non-negative integer)"
            raise ValidationError(message, field=source)
        return int(value)
    return None


class EventStream:
    """``/api/v1/events/vms``: every published event, framed as SSE (see the module docstring)."""

    def __init__(self, bus: EventBus, store: EventRepository, *, heartbeat: float, queue_size: int) -> None:
        """Stream ``bus``'s events, replay from ``store``; ``queue_size`` bounds each client's backlog."""
        self.bus = bus
        self.store = store
        self.heartbeat = heartbeat
        self.queue_size = queue_size

    @operation(
        response=str,
        media_type="text/event-stream",
        query={"since": int, "type": str, "name": str},
        errors=(422,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Open the stream (the response never ends on its own).

        Each event is ``id:``, ``event: <type>`` and ``data: <event JSON>``; ``Last-Event-ID``
        (or ``?since=ID``) resumes after that event, ``?type=`` and ``?name=`` (comma-separated
        or repeated) filter by event type and VM. See docs/adr/0012-event-stream.md.
        """
        after = resume_point(req)
        wanted = EventFilter.from_request(req)
        resp.content_type = "text/event-stream"
        resp.cache_control = ["no-cache"]
        resp.set_header("X-Accel-Buffering", "no")  # a reverse proxy must pass frames on at once
        resp.stream = self._frames(after, wanted)

    def _frames(self, after: int | None, wanted: EventFilter) -> Iterator[bytes]:
        """The response body. Subscribing happens here, when the server starts sending, so a
        subscription never outlives its response: the server closes this generator when the
        client goes away (a write failed) or the stream ended.
        """
        latest = self.store.latest_id()  # read before subscribing: newer events reach the queue
        sub = self.bus.subscribe(self.queue_size)
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            position = latest if after is None else (yield from self._replay(after, latest, wanted))
            yield from self._live(sub, position, wanted)
        finally:
            self.bus.unsubscribe(sub)

    def _replay(self, after: int, latest: int, wanted: EventFilter) -> Generator[bytes, None, int]:
        """Stored events after ``after`` that pass ``wanted``, preceded by a GAP frame when some are
        gone; returns the id of the last stored event looked at.
        """
        if after > latest:
            yield _gap(after, latest + 1, f"event {after} is newer than any stored here; resuming from now")
            after = latest
        page = self.store.since(after, REPLAY_PAGE)
        oldest = page[0].id if page else latest + 1
        if oldest > after + 1:  # ids are consecutive: the missing ones were pruned
            yield _gap(after, oldest, f"events {after + 1} to {oldest - 1} were pruned (VOLANT_EVENTS_KEEP)")
        while page:
            for record in page:
                event = Event(**{**record.payload, "id": record.id})
                if wanted.matches(event):
                    yield event_frame(event)
                after = record.id
            page = self.store.since(after, REPLAY_PAGE) if len(page) == REPLAY_PAGE else []
        return after

    def _live(self, sub: queue.Queue[Event | None], position: int, wanted: EventFilter) -> Iterator[bytes]:
        """Events from the subscription newer than ``position``, with heartbeats, until the client
        falls behind (OVERFLOW) or the bus closes (the daemon stops).
        """
        beat_at = time.monotonic() + self.heartbeat
        while True:
            wait = beat_at - time.monotonic()
            if wait <= 0:
                yield HEARTBEAT
                beat_at = time.monotonic() + self.heartbeat
                continue
            try:
                event = sub.get(timeout=wait)
            except queue.Empty:
                continue
            if event is None:
                if not self.bus.closed:
                    yield _overflow(position, self.queue_size)
                return
            if event.id <= position:  # already replayed from the store
                continue
            position = event.id
            if wanted.matches(event):
                yield event_frame(event)
                beat_at = time.monotonic() + self.heartbeat


def _gap(after: int, next_id: int, message: str) -> bytes:
    """Events with ids between ``after`` and ``next_id`` (both excluded) cannot be replayed."""
    return frame(GAP, {"last_event_id": after, "next_id": next_id, "message": message})


def _overflow(position: int, queue_size: int) -> bytes:
    """The last frame for a client that fell behind: everything up to ``position`` was delivered."""
    message = (
        f"more than {queue_size} events were waiting for this client; "
        f"reconnect with Last-Event-ID: {position} to get the rest"
    )
    return frame(OVERFLOW, {"last_event_id": position, "message": message})
