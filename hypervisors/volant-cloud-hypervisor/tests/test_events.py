"""Reading the event monitor as Cloud Hypervisor writes it: objects one after another, each followed
by blank lines, the last one possibly still being written.
"""

from __future__ import annotations

import json
from pathlib import Path

from volant_cloud_hypervisor.events import EventReader


def _event(source: str, event: str) -> str:
    record = {"timestamp": {"secs": 1, "nanos": 2}, "source": source, "event": event, "properties": None}
    return json.dumps(record, indent=2) + "\n\n"


def test_events_are_read_once_each_and_a_partial_one_waits(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    reader = EventReader(path)
    assert reader.read_new() == []  # no file yet
    rebooting = _event("vm", "rebooting")
    path.write_text(_event("vmm", "starting") + _event("vm", "booted") + rebooting[:20])
    assert [(e.source, e.event, e.is_reboot) for e in reader.read_new()] == [
        ("vmm", "starting", False),
        ("vm", "booted", False),
    ]
    with path.open("a") as out:
        out.write(rebooting[20:] + _event("guest", "panic"))
    assert [(e.event, e.is_reboot) for e in reader.read_new()] == [("rebooting", True), ("panic", True)]
    assert reader.read_new() == []
