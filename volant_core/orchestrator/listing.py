"""Filtering, sorting and paging the VM list (``GET /api/v1/vms``) on the stored rows.

Everything a filter or a sort looks at is a column of the ``vms`` table, so a
query is answered from one read of that table; only the VMs of the page are
then turned into views.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from volant_core.store import VMRecord
from volant_core.vm import VMStatus

SortKey = Literal["name", "status", "runtime", "created_at", "updated_at"]
#: Columns the list can be sorted by (``status`` sorts by its name).
SORT_KEYS: tuple[SortKey, ...] = ("name", "status", "runtime", "created_at", "updated_at")


@dataclass(frozen=True)
class VMQuery:
    """Which VMs to list and how.

    ``statuses`` keeps VMs in any of them (all when empty); ``runtime`` and
    ``plugin`` match exactly, ignoring case; ``text`` is a case-insensitive
    substring of the name, the IP address or the runtime. Sorting is by
    ``sort``, ties oldest first; ``limit`` None means no limit.
    """

    statuses: frozenset[VMStatus] = frozenset()
    runtime: str | None = None
    plugin: str | None = None
    text: str | None = None
    sort: SortKey = "created_at"
    descending: bool = False
    limit: int | None = None
    offset: int = 0

    def matches(self, record: VMRecord) -> bool:
        """Whether ``record`` passes every filter."""
        if self.statuses and record.status not in self.statuses:
            return False
        if self.runtime is not None and record.runtime.casefold() != self.runtime.casefold():
            return False
        if self.plugin is not None and record.plugin.casefold() != self.plugin.casefold():
            return False
        if self.text:
            needle = self.text.casefold()
            haystack = (record.name, record.ip_address or "", record.runtime)
            return any(needle in field.casefold() for field in haystack)
        return True

    def apply(self, records: Sequence[VMRecord]) -> tuple[list[VMRecord], int]:
        """The page of ``records`` (given oldest first) and how many matched before paging."""
        matched = sorted(filter(self.matches, records), key=self._sort_value, reverse=self.descending)
        end = None if self.limit is None else self.offset + self.limit
        return matched[self.offset : end], len(matched)

    def _sort_value(self, record: VMRecord) -> Any:
        return getattr(record, self.sort)
