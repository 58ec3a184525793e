"""Reading Cloud Hypervisor's event monitor (``--event-monitor path=``) as the VMM writes it.

The VMM writes one JSON object per event (``{"timestamp": ..., "source": "vm", "event": "booted",
"properties": ...}``), each followed by blank lines; the reader takes them one by one, whatever
whitespace separates them, and keeps an incomplete last object for the next read.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: How often the watcher reads new events (seconds).
POLL_INTERVAL = 0.2
#: Events that say the guest reset inside the same VMM process (a reboot; with ``panic=-1`` a panic
#: too), or panicked: each is a crash for Volant.
REBOOT_EVENTS = frozenset({("vm", "rebooting"), ("vm", "rebooted"), ("guest", "panic")})


@dataclass(frozen=True)
class VmmEvent:
    """One event: who sent it (``vmm``, ``vm``, ``guest``), what it says, and its properties."""

    source: str
    event: str
    properties: dict[str, Any]

    @property
    def is_reboot(self) -> bool:
        """Whether the guest reset or panicked."""
        return (self.source, self.event) in REBOOT_EVENTS


class EventReader:
    """Reads the events appended to one event-monitor file since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._pending = ""
        self._decoder = json.JSONDecoder()

    def read_new(self) -> list[VmmEvent]:
        """The complete events written since the last call (none when the file does not exist)."""
        try:
            with self.path.open("rb") as source:
                source.seek(self._offset)
                data = source.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        self._pending += data.decode(errors="replace")
        events = []
        while True:
            text = self._pending.lstrip()
            if not text:
                self._pending = ""
                break
            try:
                value, end = self._decoder.raw_decode(text)
            except ValueError:
                self._pending = text  # incomplete: the rest comes with a later write
                break
            self._pending = text[end:]
            if isinstance(value, dict):
                properties = value.get("properties")
                events.append(
                    VmmEvent(
                        str(value.get("source", "")),
                        str(value.get("event", "")),
                        properties if isinstance(properties, dict) else {},
                    )
                )
        return events


def watch_events(
    path: Path, on_event: Callable[[VmmEvent], None], running: Callable[[], bool], gone: threading.Event
) -> None:
    """Call ``on_event`` for each event appended to ``path`` while ``running()``, until ``gone`` is set
    (in a daemon thread of its own). Events already in the file are read too.
    """
    reader = EventReader(path)

    def loop() -> None:
        while True:
            for event in reader.read_new():
                try:
                    on_event(event)
                except Exception:
                    log.exception("handling event %s/%s of %s", event.source, event.event, path)
            if gone.wait(POLL_INTERVAL) or not running():
                return

    threading.Thread(target=loop, name=f"ch-events-{path.parent.name}", daemon=True).start()
