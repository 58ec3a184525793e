"""The ``vms`` table: one row per VM and the host resources it holds; vsock CID allocation."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from volant_core.errors import NotFoundError
from volant_core.store.integrity import integrity_errors
from volant_core.store.models import VM, utcnow
from volant_core.store.records import VMRecord
from volant_core.store.repository import Repository, first
from volant_core.store.statements import Table, marks

#: Smallest vsock context ID a guest may get (0-2 are reserved by the host).
FIRST_GUEST_CID = 3

#: Columns :meth:`VMRepository.update` may change (name and timestamps are not among them).
UPDATABLE = frozenset(
    {
        "status",
        "status_reason",
        "pid",
        "runtime",
        "hypervisor",
        "accelerator",
        "ip_address",
        "mac_address",
        "vsock_cid",
        "cpu_cores",
        "memory_mb",
        "kernel_cmdline",
        "serial_socket",
        "console_socket",
        "runtime_dir",
        "group_id",
        "config_version",
        "console_log",
    }
)


_VMS = Table(VM)
_STATUS = Table(VM, fields=("status",))
_BY_NAME = f"{_VMS.column('name')} = ?"


class VMRepository(Repository):
    """Create, read, update and delete VM rows.

    An empty ``ip_address`` is stored as NULL: a VM without an address has
    none, so any number of them coexist under the UNIQUE constraint.
    """

    def create(
        self,
        *,
        name: str,
        status: str,
        runtime: str,
        plugin: str,
        hypervisor: str,
        mac_address: str,
        vsock_cid: int,
        cpu_cores: int,
        memory_mb: int,
        runtime_dir: Path,
        kernel_cmdline: str = "",
        ip_address: str | None = None,
        accelerator: str | None = None,
        status_reason: str | None = None,
        pid: int | None = None,
        serial_socket: Path | None = None,
        console_socket: Path | None = None,
        group_id: int | None = None,
    ) -> VMRecord:
        """Insert a VM; :class:`ConflictError` when its name, IP, MAC or CID is taken."""
        now = utcnow()
        values: dict[str, Any] = {
            "name": name,
            "status": status,
            "status_reason": status_reason,
            "pid": pid,
            "runtime": runtime,
            "plugin": plugin,
            "hypervisor": hypervisor,
            "accelerator": accelerator,
            "ip_address": ip_address or None,
            "mac_address": mac_address,
            "vsock_cid": vsock_cid,
            "cpu_cores": cpu_cores,
            "memory_mb": memory_mb,
            "kernel_cmdline": kernel_cmdline,
            "serial_socket": serial_socket,
            "console_socket": console_socket,
            "runtime_dir": runtime_dir,
            "group_id": group_id,
            "created_at": now,
            "updated_at": now,
        }
        missing_group = f"deployment id {group_id} does not exist"
        with integrity_errors("vm", values, missing=missing_group):
            return VMRecord(**_VMS.inserted(self._db, values))

    def get_by_name(self, name: str) -> VMRecord:
        """The VM called ``name``; :class:`NotFoundError` if there is none."""
        rows = _VMS.rows(self._db, _BY_NAME, (name,), tail="LIMIT 1")
        return VMRecord(**first(rows, f"vm {name!r} not found"))

    def list(self, *, group_id: int | None = None) -> builtins.list[VMRecord]:
        """All VMs, or the members of one deployment, oldest first."""
        where, params = (f"{_VMS.column('group_id')} = ?", (group_id,)) if group_id is not None else ("", ())
        order = f"ORDER BY {_VMS.column('created_at')}, {_VMS.column('id')}"
        return [VMRecord(**row) for row in _VMS.rows(self._db, where, params, tail=order)]

    def count(self) -> int:
        """How many VMs there are."""
        row = self._db.execute_sql(f"SELECT count(*) FROM {_VMS.name}").fetchone()
        return int(row[0])

    def totals(
        self, fields: Sequence[str], *, statuses: Iterable[str], excluding: str
    ) -> tuple[int, dict[str, int]]:
        """How many VMs in one of ``statuses`` there are, VM ``excluding`` left out, and the sum of
        each of ``fields`` (integer columns) over them: one query, however many VMs there are.
        """
        wanted = list(statuses)
        sums = ", ".join(f"coalesce(sum({_VMS.column(field)}), 0)" for field in fields)
        where = f"{_VMS.column('status')} IN ({marks(wanted)}) AND {_VMS.column('name')} != ?"
        row = self._db.execute_sql(
            f"SELECT count(*), {sums} FROM {_VMS.name} WHERE {where}", [*wanted, excluding]
        )
        count, *totals = row.fetchone()
        return int(count), {field: int(total) for field, total in zip(fields, totals, strict=True)}

    def status_of(self, name: str) -> str:
        """The status of VM ``name`` (its row's one column, not the whole record);
        :class:`NotFoundError` if there is none.
        """
        rows = _STATUS.rows(self._db, _BY_NAME, (name,), tail="LIMIT 1")
        status: str = first(rows, f"vm {name!r} not found")["status"]
        return status

    def changes(self) -> int:
        """How many times a VM or a VM's configuration (current or past) was written, by anyone.

        Every insert, update and delete of those rows adds one, in its own transaction (a
        trigger), whichever connection or process made it. An unchanged count means unchanged
        VMs and configurations: read it *before* reading them to key what is derived from them.
        """
        row = self._db.execute_sql("SELECT count FROM vm_changes WHERE id = 1").fetchone()
        return int(row[0])

    def update(self, name: str, **changes: Any) -> VMRecord:
        """Set the given columns (see :data:`UPDATABLE`) of VM ``name``; return the updated row."""
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise TypeError(f"VM columns that cannot be updated: {', '.join(sorted(unknown))}")
        if "ip_address" in changes:
            changes["ip_address"] = changes["ip_address"] or None
        missing_group = f"deployment id {changes.get('group_id')} does not exist"
        with integrity_errors("vm", changes, missing=missing_group):
            rows = _VMS.updated(self._db, {**changes, "updated_at": utcnow()}, _BY_NAME, (name,))
        return VMRecord(**first(rows, f"vm {name!r} not found"))

    def delete(self, name: str) -> None:
        """Delete VM ``name``; its configuration, history and IP lease go with it."""
        if not _VMS.delete(self._db, _BY_NAME, (name,)):
            raise NotFoundError(f"vm {name!r} not found")

    def next_vsock_cid(self) -> int:
        """The smallest vsock CID >= 3 no VM holds.

        Call it in the transaction that inserts the VM, so no other writer
        takes the same CID in between.
        """
        cid = FIRST_GUEST_CID
        column = _VMS.column("vsock_cid")
        for (used,) in self._db.execute_sql(f"SELECT {column} FROM {_VMS.name} ORDER BY {column}"):
            if used != cid:
                break
            cid += 1
        return cid
