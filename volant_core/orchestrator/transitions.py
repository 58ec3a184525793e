"""Recording what happens to a VM: its status written to its row, each change published as one event."""

from __future__ import annotations

from typing import Any

from volant_core.events import Event, EventBus, EventType
from volant_core.store import Store, VMRecord
from volant_core.vm import VMStatus


class Transitions:
    """Writes a VM's status changes and publishes them, together with its other events."""

    def __init__(self, store: Store, events: EventBus) -> None:
        self._store = store
        self._events = events

    def set_status(
        self, name: str, status: VMStatus, event: EventType, message: str, **changes: Any
    ) -> VMRecord:
        """Move VM ``name`` to ``status`` (writing ``changes`` to its row too) and publish ``event``;
        the row as written.

        ``agent`` and ``exit_status`` in ``changes`` go into the event's data, not the row.
        """
        extra = {k: changes.pop(k) for k in ("agent", "exit_status") if k in changes}
        record = self._store.vms.update(name, **self.status_columns(status, message), **changes)
        self.emit(event, record, message, **extra)
        return record

    def status_columns(self, status: VMStatus, message: str) -> dict[str, Any]:
        """The row's columns for ``status``, moved to for the reason ``message``: for a caller that
        writes them together with other changes, then publishes the event with :meth:`emit`.
        """
        return {"status": status, "status_reason": _reason(status, message)}

    def emit(self, event: EventType, record: VMRecord, message: str, **data: Any) -> None:
        """Publish ``event`` about the VM ``record`` describes; ``data`` adds to its pid and address."""
        self._events.publish(
            Event(
                type=event,
                name=record.name,
                status=record.status,
                message=message,
                data={"pid": record.pid, "ip_address": record.ip_address, **data},
            )
        )

    def download_progress(self, name: str, field: str, url: str, done: int, total: int | None) -> None:
        """Publish a ``VM_DOWNLOAD_PROGRESS`` event: ``done`` of ``total`` bytes (None: unknown) of
        the artifact ``field`` names, fetched for VM ``name`` while it is ``starting``.
        """
        of = "" if total is None else f" of {total}"
        self._events.publish(
            Event(
                type=EventType.VM_DOWNLOAD_PROGRESS,
                name=name,
                status=VMStatus.STARTING,
                message=f"{field}: {done}{of} bytes",
                data={"field": field, "url": url, "done": done, "total": total},
            )
        )

    def plugin_error(self, name: str, message: str) -> None:
        """Publish a ``PLUGIN_ERROR`` event about VM ``name`` that no installed plugin can carry."""
        self._events.publish(Event(type=EventType.PLUGIN_ERROR, name=name, message=message))


def _reason(status: VMStatus, message: str) -> str | None:
    """Only states that need explaining keep a reason."""
    return message if status in (VMStatus.CRASHED, VMStatus.STOPPED) and message != "vm stopped" else None
