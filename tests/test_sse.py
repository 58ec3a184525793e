"""The event stream ``/api/v1/events/vms``, read with a real HTTP client over real sockets.

Framing, ids and order, resuming with ``Last-Event-ID`` or ``?since=``, filters, gaps, heartbeats
on a long-lived stream, the final OVERFLOW frame for a client that fell behind, and streams ending
when their client goes away or the daemon stops.
"""

from __future__ import annotations

import functools
import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import pytest

from volant_core.events import Event, EventBus, EventType
from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.hostvm import host_process_daemon
from volant_core.testing.waiting import eventually

PATH = "/api/v1/events/vms"


@dataclass
class Frame:
    """One SSE frame as received: its fields, or the comments of a comment-only frame."""

    id: int | None = None
    event: str | None = None
    data: dict[str, Any] | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)


class SseClient:
    """An SSE client on :mod:`http.client`: sends the GET, then parses frames as they arrive.

    ``rcvbuf`` shrinks the socket's receive buffer (set before connecting), so a client that stops
    reading makes the server's writes block soon.
    """

    def __init__(
        self,
        api: RunningDaemon,
        query: str = "",
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
        rcvbuf: int | None = None,
    ) -> None:
        url = urlsplit(api.url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        self.connection = http.client.HTTPConnection(host, port, timeout=timeout)
        if rcvbuf is not None:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect((host, port))
            self.connection.sock = sock
        self.connection.request("GET", PATH + query, headers=headers or {})
        self.response = self.connection.getresponse()

    def __enter__(self) -> SseClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Hang up."""
        self.connection.close()

    def frame(self) -> Frame:
        """The next frame; EOFError when the server ended the response."""
        frame = Frame()
        while True:
            line = self.response.readline()
            if not line:
                raise EOFError("the server ended the stream")
            text = line.decode().rstrip("\n")
            if not text:
                return frame
            key, _, value = text.partition(":")
            value = value.removeprefix(" ")
            if key == "":
                frame.comments.append(value)
            elif key == "id":
                frame.id = int(value)
            elif key == "event":
                frame.event = value
            elif key == "data":
                frame.data = json.loads(value)
            elif key == "retry":
                frame.retry = int(value)

    def events(self, count: int) -> list[Frame]:
        """The next ``count`` frames with an ``event:``, skipping heartbeats."""
        found: list[Frame] = []
        while len(found) < count:
            frame = self.frame()
            if frame.event is not None:
                found.append(frame)
        return found

    def events_until(self, event_type: str, name: str) -> list[Frame]:
        """Event frames up to and including the first ``event_type`` of VM ``name``."""
        found: list[Frame] = []
        while not found or (found[-1].event, found[-1].data and found[-1].data["name"]) != (event_type, name):
            found += self.events(1)
        return found


def _open(api: RunningDaemon, query: str = "", **options: Any) -> SseClient:
    """An SSE client past the ``retry:`` frame that opens every stream."""
    client = SseClient(api, query, **options)
    assert client.response.status == 200
    assert client.frame().retry is not None
    return client


def _bus(api: RunningDaemon) -> EventBus:
    return api.daemon.orchestrator.events


def _publish(api: RunningDaemon, event_type: str, name: str, message: str = "") -> int:
    return _bus(api).publish(Event(type=event_type, name=name, message=message)).id


def _stored(api: RunningDaemon, after: int) -> list[tuple[int, str]]:
    return [(record.id, record.type) for record in api.daemon.store.events.since(after)]


def _ids_and_types(frames: list[Frame]) -> list[tuple[int | None, str | None]]:
    return [(frame.id, frame.event) for frame in frames]


def test_lifecycle_events_arrive_in_order_and_a_reconnect_gets_exactly_the_missed_ones(
    host_manifest: dict[str, Any],
) -> None:
    with host_process_daemon() as api:
        api.request("POST", "/api/v1/plugins", host_manifest)
        before = api.daemon.store.events.latest_id()
        with _open(api) as client:
            assert client.response.getheader("Content-Type") == "text/event-stream"
            assert client.response.getheader("Cache-Control") == "no-cache"
            assert api.request("POST", "/api/v1/vms", {"name": "alpha", "plugin": "hello-host"}).status == 201
            api.wait_for_status("alpha", {"running"}, timeout=30)
            api.request("POST", "/api/v1/vms/alpha/stop")
            frames = client.events_until("VM_STOPPED", "alpha")
        expected = ["VM_CREATED", "VM_STARTING", "VM_RUNNING", "VM_STOPPING", "VM_STOPPED"]
        assert [f.event for f in frames if f.data and f.data["name"] == "alpha"] == expected
        assert _ids_and_types(frames) == _stored(api, before)  # every event, in order, with its id
        assert [f.id for f in frames] == list(range(before + 1, before + 1 + len(frames)))
        assert all(f.data == {**f.data, "id": f.id, "type": f.event} for f in frames if f.data)

        # Events while no client listens; the reconnect replays exactly those, then goes on live.
        last = frames[-1].id
        assert last is not None
        api.request("POST", "/api/v1/vms/alpha/start")
        api.wait_for_status("alpha", {"running"}, timeout=30)
        missed = _stored(api, last)
        with _open(api, headers={"Last-Event-ID": str(last)}) as client:
            assert _ids_and_types(client.events(len(missed))) == missed
            api.request("POST", "/api/v1/vms/alpha/stop")
            live = client.events_until("VM_STOPPED", "alpha")
        assert _ids_and_types(live) == _stored(api, missed[-1][0])
        assert [f.event for f in live] == ["VM_STOPPING", "VM_STOPPED"]


def test_since_and_filters_apply_to_replay_and_live_events() -> None:
    with running_daemon() as api:
        start = _publish(api, "VM_CREATED", "a") - 1
        _publish(api, "VM_RUNNING", "b")
        _publish(api, "VM_RUNNING", "a")
        _publish(api, "VM_CRASHED", "a")
        query = f"?since={start}&type=vm_running,VM_CRASHED&name=a&name=c"
        with _open(api, query) as client:
            replayed = client.events(2)
            _publish(api, "VM_RUNNING", "b")
            _publish(api, "VM_STOPPED", "a")
            wanted = _publish(api, "VM_RUNNING", "c")
            live = client.events(1)
        assert _ids_and_types(replayed) == [(start + 3, "VM_RUNNING"), (start + 4, "VM_CRASHED")]
        assert _ids_and_types(live) == [(wanted, "VM_RUNNING")]

        # Last-Event-ID wins over ?since= (it is what EventSource sends when it reconnects).
        with _open(api, f"?since={start}", headers={"Last-Event-ID": str(wanted - 1)}) as client:
            assert _ids_and_types(client.events(1)) == [(wanted, "VM_RUNNING")]


def test_heartbeats_fill_silences_only_never_follow_an_event() -> None:
    """A heartbeat is written only after a whole period without a write: an event restarts the
    period (an hour here, which the test never waits), so back-to-back events come back to back.
    """
    with running_daemon(sse_heartbeat=3600) as api:
        with _open(api) as client:
            first = _publish(api, "VM_RUNNING", "quiet")
            second = _publish(api, "VM_STOPPED", "quiet")
            frames = [client.frame(), client.frame()]
    assert [(f.id, f.event, f.comments) for f in frames] == [
        (first, "VM_RUNNING", []),
        (second, "VM_STOPPED", []),
    ]


@pytest.mark.parametrize(
    ("query", "headers", "field"),
    [
        ("?type=VM_EXPLODED", {}, "type"),
        ("?since=-1", {}, "since"),
        ("", {"Last-Event-ID": "abc"}, "Last-Event-ID"),
        # "²" (0xB2 in a latin-1 header) is a digit to str.isdigit but no number to int()
        ("", {"Last-Event-ID": "\u00b2"}, "Last-Event-ID"),
        ("?since=%C2%B2", {}, "since"),
    ],
)
def test_bad_stream_parameters_are_refused(query: str, headers: dict[str, str], field: str) -> None:
    with running_daemon() as api:
        reply = api.request("GET", PATH + query, headers=headers)
        assert reply.status == 422
        error = reply.json()["error"]
        assert error["message"].startswith(field)
        assert error["details"][0]["field"] == field


def test_unknown_event_types_are_refused_naming_each_and_the_known_ones() -> None:
    with running_daemon() as api:
        reply = api.request("GET", PATH + "?type=vm_exploded,VM_RUNNING&type=VM_IMPLODED")
        assert reply.status == 422
        known = ", ".join(EventType)
        assert reply.json()["error"]["message"] == (
            f"type: unknown event type VM_EXPLODED, VM_IMPLODED; known: {known}"
        )


def test_a_gap_frame_says_which_events_cannot_be_replayed() -> None:
    with running_daemon(events_keep=100) as api:
        ids = [_publish(api, "VM_LOG", "noisy", str(i)) for i in range(250)]
        oldest = api.daemon.store.events.since(0, limit=1)[0].id
        assert oldest > ids[5] + 1, "the events table was not pruned"
        with _open(api, f"?since={ids[5]}") as client:
            gap = client.frame()
            assert gap.event == "GAP" and gap.id is None
            assert gap.data is not None and gap.data["last_event_id"] == ids[5]
            assert gap.data["next_id"] == oldest
            assert (
                gap.data["message"] == f"events {ids[5] + 1} to {oldest - 1} were pruned (VOLANT_EVENTS_KEEP)"
            )
            assert [f.id for f in client.events(ids[-1] - oldest + 1)] == list(range(oldest, ids[-1] + 1))

        # One event pruned is a gap too.
        with _open(api, f"?since={oldest - 2}") as client:
            gap = client.frame()
            assert gap.event == "GAP" and gap.data is not None and gap.data["next_id"] == oldest
            assert (
                gap.data["message"] == f"events {oldest - 1} to {oldest - 1} were pruned (VOLANT_EVENTS_KEEP)"
            )

        # An id this daemon never handed out (its state was reset): GAP, then live events.
        with _open(api, headers={"Last-Event-ID": str(ids[-1] + 1000)}) as client:
            gap = client.frame()
            assert gap.event == "GAP" and gap.data is not None and gap.data["next_id"] == ids[-1] + 1
            assert gap.data["last_event_id"] == ids[-1] + 1000
            assert (
                gap.data["message"]
                == f"event {ids[-1] + 1000} is newer than any stored here; resuming from now"
            )
            new = _publish(api, "VM_CREATED", "fresh")
            assert _ids_and_types(client.events(1)) == [(new, "VM_CREATED")]


def test_a_reconnect_that_missed_nothing_gets_the_next_live_event() -> None:
    with running_daemon(sse_heartbeat=0.2) as api:
        newest = _publish(api, "VM_RUNNING", "steady")
        with _open(api, headers={"Last-Event-ID": str(newest)}) as client:
            assert client.frame().comments == ["heartbeat"]  # the replay (of nothing) is over
            new = _publish(api, "VM_STOPPED", "steady")
            assert _ids_and_types(client.events(1)) == [(new, "VM_STOPPED")]


def test_a_reconnect_that_missed_more_than_a_page_of_events_gets_each_of_them_once() -> None:
    """Replay reads the store a page (``REPLAY_PAGE``, 500) at a time: a client that missed more
    than two pages gets every event after its ``Last-Event-ID``, in order, once, then live ones.
    """
    with running_daemon() as api:
        resume = _publish(api, "VM_RUNNING", "chatty")  # pages start after it, not at a multiple of 500
        missed = [_publish(api, "VM_LOG", "chatty", str(i)) for i in range(1001)]
        with _open(api, headers={"Last-Event-ID": str(resume)}) as client:
            assert [f.id for f in client.events(len(missed))] == missed
            new = _publish(api, "VM_RUNNING", "chatty")
            assert _ids_and_types(client.events(1)) == [(new, "VM_RUNNING")]


def test_a_client_that_falls_behind_gets_a_final_overflow_frame_and_can_resume() -> None:
    with running_daemon(sse_queue=4) as api:
        bus = _bus(api)
        first = api.daemon.store.events.latest_id() + 1
        # The client reads nothing while big events are published: the socket buffers fill, the
        # server's write blocks, its queue of 4 fills and the bus ends the subscription.
        with _open(api, rcvbuf=4096) as client:
            eventually(
                lambda: _publish(api, "VM_LOG", "flood", "x" * 65536) and bus.subscriber_count == 0,
                "the slow client's subscription to end",
                timeout=120,
                interval=0,
            )
            frames: list[Frame] = []
            while not frames or frames[-1].event != "OVERFLOW":
                frames += client.events(1)
            with pytest.raises(EOFError):
                client.frame()
        delivered, overflow = frames[:-1], frames[-1]
        assert [f.id for f in delivered] == list(range(first, first + len(delivered)))
        assert overflow.id is None and overflow.data is not None
        last: int = overflow.data["last_event_id"]
        assert last == delivered[-1].id
        assert overflow.data["message"] == (
            "more than 4 events were waiting for this client; "
            f"reconnect with Last-Event-ID: {last} to get the rest"
        )
        latest = api.daemon.store.events.latest_id()
        assert latest > last, "nothing was left undelivered"

        with _open(api, headers={"Last-Event-ID": str(last)}) as client:
            rest = client.events(latest - last)
        assert [f.id for f in rest] == list(range(last + 1, latest + 1))


def test_a_stream_ends_when_its_client_goes_away() -> None:
    with running_daemon(sse_heartbeat=0.2) as api:
        bus = _bus(api)
        with _open(api):
            eventually(lambda: bus.subscriber_count == 1, "the stream to subscribe")
        # The next heartbeats fail to write: the server closes the response and unsubscribes.
        eventually(lambda: bus.subscriber_count == 0, "the stream to notice its client left", timeout=10)


def test_stopping_the_daemon_ends_open_streams_promptly() -> None:
    with running_daemon() as api:  # the real heartbeat: nothing wakes the stream but the stop
        client = _open(api, timeout=10)
        eventually(lambda: _bus(api).subscriber_count == 1, "the stream to subscribe")
        stopping = time.monotonic()
    try:
        assert time.monotonic() - stopping < 5
        with pytest.raises(EOFError):
            client.frame()
        assert time.monotonic() - stopping < 5
    finally:
        client.close()


def test_a_stream_stays_open_past_a_minute_with_heartbeats() -> None:
    with running_daemon() as api:
        assert api.daemon.settings.sse_heartbeat == 15
        opened = time.monotonic()
        with _open(api, timeout=30) as client:
            heartbeats = 0
            while heartbeats < 4:
                frame = client.frame()
                assert frame.comments == ["heartbeat"], f"unexpected frame {frame}"
                heartbeats += 1
            assert time.monotonic() - opened >= 60
            new = _publish(api, "VM_RUNNING", "late")
            assert _ids_and_types(client.events(1)) == [(new, "VM_RUNNING")]


def test_streams_opened_while_events_are_published_get_each_event_once() -> None:
    """Events published while a stream switches from replaying the store to live delivery arrive once.

    The publisher stays at most ``LEAD`` events ahead of the reader (well within the stream's queue):
    a publisher faster than a reader on a loaded machine would otherwise make the stream overflow,
    which is another behaviour (``test_a_client_that_falls_behind_gets_a_final_overflow_frame...``).
    """
    lead = 64
    with running_daemon() as api:
        publishing = threading.Event()
        publishing.set()
        pace = threading.Condition()
        read_up_to = [0]

        def publish_until_stopped() -> None:
            while publishing.is_set():
                published = _publish(api, "VM_LOG", "busy")
                with pace:
                    pace.wait_for(functools.partial(may_publish_after, published))

        def may_publish_after(published: int) -> bool:
            return published - read_up_to[0] < lead or not publishing.is_set()

        def reader_at(event_id: int) -> None:
            with pace:
                read_up_to[0] = event_id
                pace.notify_all()

        publisher = threading.Thread(target=publish_until_stopped)
        publisher.start()
        try:
            for _ in range(20):
                resume = api.daemon.store.events.latest_id()
                reader_at(resume)
                with _open(api, headers={"Last-Event-ID": str(resume)}) as client:
                    end = api.daemon.store.events.latest_id() + 20
                    ids: list[int | None] = []
                    while not ids or (ids[-1] or 0) < end:
                        ids += [f.id for f in client.events(1)]
                        reader_at(ids[-1] or 0)
                assert ids == list(range(resume + 1, end + 1))
        finally:
            publishing.clear()
            reader_at(0)
            publisher.join(30)
