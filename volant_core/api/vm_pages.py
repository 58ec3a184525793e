"""Answers of ``GET /api/v1/vms`` kept, encoded, while no VM and no VM configuration changes.

Building the list of 1,000 VMs takes tens of milliseconds (rows, configurations, views,
the response check, JSON); a client polling it gets the same bytes again in microseconds.
A page is keyed by its :class:`~volant_core.orchestrator.listing.VMQuery` and the store's VM
change count (:meth:`volant_core.store.vms.VMRepository.changes`), read before the VMs are:
a kept page is never older than the count it is kept under, and a new count drops every page.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import falcon

from volant_core.orchestrator import Orchestrator
from volant_core.orchestrator.listing import VMQuery

#: VMs whose views are built, checked and encoded at once: the list's memory is one batch's
#: views and the body, whatever the number of VMs.
BATCH = 100
#: Queries whose pages are kept at once (the oldest kept is dropped first).
KEPT_QUERIES = 16


@dataclass(frozen=True)
class VMPage:
    """One answer of the VM list: its JSON body and ``X-Total-Count``."""

    body: bytes
    total: int


class VMPages:
    """Builds the VM list's pages and keeps them for :data:`KEPT_QUERIES` queries while the VM
    change count stays the same. Each batch is checked with ``check`` (the answer's model) and
    encoded as Falcon encodes JSON media; the body joins the batches' items with ``", "``.
    """

    def __init__(self, orchestrator: Orchestrator, check: Callable[[Any], object]) -> None:
        self._orchestrator = orchestrator
        self._check = check
        self._json = falcon.media.JSONHandler()
        self._lock = threading.Lock()
        self._changes = -1
        self._pages: dict[VMQuery, VMPage] = {}

    def page(self, query: VMQuery) -> VMPage:
        """The page ``query`` selects, as the VMs and their configurations are now."""
        changes = self._orchestrator.store.vms.changes()
        with self._lock:
            kept = self._pages.get(query) if changes == self._changes else None
        if kept is not None:
            return kept
        batches, total = self._orchestrator.find_vms(query, BATCH)
        pieces = []
        for views in batches:
            media = [vm.to_dict() for vm in views]
            self._check(media)
            pieces.append(self._json.serialize(media, falcon.MEDIA_JSON)[1:-1])  # without its [ ]
        page = VMPage(b"[" + b", ".join(pieces) + b"]", total)
        with self._lock:
            if changes > self._changes:
                self._changes, self._pages = changes, {}
            if changes == self._changes:
                if len(self._pages) >= KEPT_QUERIES:
                    del self._pages[next(iter(self._pages))]
                self._pages[query] = page
        return page
