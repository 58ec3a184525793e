"""The record of what ``volar setup`` changed on a host, with what was there before each change.

Kept in :data:`RECORD_FILE` (under ``--root``), rewritten after every step so that a run killed half
way can still be undone. ``--uninstall`` undoes the changes newest first and removes the record.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from volant_core.hostsetup.errors import HostSetupError

RECORD_FILE = Path("/var/lib/volant/setup.json")

#: What each kind of change is: the thing ``target`` names and what ``prior``/``value`` hold.
KINDS = {
    "directory": "a directory setup created (target: host path)",
    "file": "a file setup wrote (prior: None, or the earlier content, base64, and mode)",
    "user": "a system user setup created (target: its name)",
    "bridge": "a bridge setup created (target: its name)",
    "address": "an address setup added (target: the bridge; value: address/prefix)",
    "link-up": "a link setup brought up (target: its name)",
    "sysctl": "a kernel parameter setup set (target: its key; prior: the earlier value)",
    "firewall": "rules setup loaded (target: nftables or iptables; prior: a listing of ours from before)",
    "unit": "a systemd unit setup enabled (target: its name)",
}


@dataclass(frozen=True)
class Change:
    """One change made to the host (see :data:`KINDS`)."""

    kind: str
    target: str
    prior: Any = None
    value: str | None = None

    @property
    def key(self) -> tuple[str, str, str | None]:
        """What the change is to: a later run's change to the same thing keeps the first prior."""
        return (self.kind, self.target, self.value)


@dataclass
class Record:
    """The changes made so far, oldest first, and the firewall rules as last loaded."""

    changes: list[Change] = field(default_factory=list)
    firewall: dict[str, str] = field(default_factory=dict)

    def add(self, change: Change) -> None:
        """Note ``change`` unless the same thing was changed before (its first prior is kept)."""
        if all(known.key != change.key for known in self.changes):
            self.changes.append(change)

    def to_json(self) -> str:
        """The record file's text."""
        return json.dumps(
            {"changes": [asdict(change) for change in self.changes], "firewall": self.firewall}, indent=2
        )


def load(path: Path) -> Record | None:
    """The record at ``path``, or None when there is none."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise HostSetupError(f"cannot read the setup record {path}: {err}") from err
    return Record([Change(**item) for item in data["changes"]], dict(data.get("firewall", {})))


def save(path: Path, record: Record) -> None:
    """Write ``record`` to ``path`` atomically (0600: it may hold the earlier content of files)."""
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(record.to_json())
    os.replace(temporary, path)
