"""Lifecycle events: stored with a monotonic id, then fanned out to listeners.

Every state change of a VM is published here exactly once. The event is
written to the ``events`` table first (so a client can resume from its id),
then handed to the ``volant_event`` hook and to in-process subscribers (the
SSE stream), each of which gets a bounded queue.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)


class EventType(StrEnum):
    """Event types; the ``VM_*`` ones but ``VM_CONFIG_CHANGED``, ``VM_UNHEALTHY`` and ``VM_HEALTHY``
    are those of the Go original.

    ``VM_DOWNLOAD_PROGRESS`` reports a boot medium being fetched for a ``starting`` VM (``data``:
    ``field``, ``url``, ``done`` and ``total`` bytes, ``total`` null when unknown), at most every
    half second per download and once complete.

    ``PLUGIN_EVENT`` and ``PLUGIN_ERROR`` are published by plugins (through their context) and by
    the core when a plugin failed in a notification hook or while releasing a VM's resources.
    """

    VM_CREATED = "VM_CREATED"
    VM_STARTING = "VM_STARTING"
    VM_RUNNING = "VM_RUNNING"
    VM_STOPPING = "VM_STOPPING"
    VM_STOPPED = "VM_STOPPED"
    VM_CRASHED = "VM_CRASHED"
    VM_DELETED = "VM_DELETED"
    VM_LOG = "VM_LOG"
    VM_CONFIG_CHANGED = "VM_CONFIG_CHANGED"
    VM_UNHEALTHY = "VM_UNHEALTHY"
    VM_HEALTHY = "VM_HEALTHY"
    VM_DOWNLOAD_PROGRESS = "VM_DOWNLOAD_PROGRESS"
    DEPLOYMENT_CREATED = "DEPLOYMENT_CREATED"
    DEPLOYMENT_UPDATED = "DEPLOYMENT_UPDATED"
    DEPLOYMENT_RECONCILED = "DEPLOYMENT_RECONCILED"
    DEPLOYMENT_DELETED = "DEPLOYMENT_DELETED"
    PLUGIN_EVENT = "PLUGIN_EVENT"
    PLUGIN_ERROR = "PLUGIN_ERROR"


@dataclass(frozen=True)
class Event:
    """One published event. ``id`` is assigned by the store and only ever grows."""

    type: str
    name: str | None
    status: str | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    timestamp: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    id: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as sent on the SSE stream (a new dict each call, ``data`` copied too)."""
        return {
            "type": self.type,
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "data": dict(self.data),
            "timestamp": self.timestamp,
            "id": self.id,
        }


class EventBus:
    """Stores each event through ``persist`` (which returns its id), then notifies listeners.

    Listeners are called in the publishing thread, in the order they were added; one
    that raises is logged and the others still run.
    """

    def __init__(self, persist: Callable[[Event], int]) -> None:
        self._persist = persist
        self._listeners: list[Callable[[Event], object]] = []
        self._lock = threading.Lock()
        self._subscribers: set[queue.Queue[Event | None]] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (a subscriber's final ``None`` then means "the daemon stops")."""
        return self._closed

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open."""
        with self._lock:
            return len(self._subscribers)

    def add_listener(self, listener: Callable[[Event], object]) -> None:
        """Call ``listener(event)`` for every event published from now on (it must not block)."""
        self._listeners.append(listener)

    def publish(self, event: Event) -> Event:
        """Store ``event``, give it its id and deliver it; returns the stored event."""
        with self._lock:
            stored = replace(event, id=self._persist(event))
            for sub in list(self._subscribers):
                try:
                    sub.put_nowait(stored)
                except queue.Full:
                    self._subscribers.discard(sub)
                    _offer_end(sub)
        for listener in list(self._listeners):
            try:
                listener(stored)
            except Exception:  # a listener's bug never breaks the lifecycle that emitted the event
                log.exception("event listener %r failed on %s", listener, stored.type)
        return stored

    def subscribe(self, maxsize: int) -> queue.Queue[Event | None]:
        """A queue receiving every event published from now on, ending with ``None`` when its
        reader fell ``maxsize`` events behind or the bus closed. Those not yet taken are then
        dropped, so every event after the last one taken is still only in the store.
        """
        sub: queue.Queue[Event | None] = queue.Queue(maxsize=maxsize)
        with self._lock:
            if self._closed:
                sub.put_nowait(None)
            else:
                self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: queue.Queue[Event | None]) -> None:
        """Stop delivering to ``sub``."""
        with self._lock:
            self._subscribers.discard(sub)

    def close(self) -> None:
        """End every subscription, now and to come (the daemon stops); publishing still works."""
        with self._lock:
            self._closed = True
            ended, self._subscribers = self._subscribers, set()
        for sub in ended:
            _offer_end(sub)


def _offer_end(sub: queue.Queue[Event | None]) -> None:
    """Replace what ``sub`` holds by the end marker (its reader gets it next).

    Clearing at once, not one item at a time, keeps what the reader took a prefix of what was
    delivered: the last event it took tells it where to resume from.
    """
    with sub.mutex:
        sub.queue.clear()
    sub.put_nowait(None)
