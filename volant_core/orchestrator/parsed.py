"""Stored configuration versions parsed once each: a version's document never changes."""

from __future__ import annotations

import threading
from collections import OrderedDict

from volant_core.orchestrator.vmconfig import VMConfig
from volant_core.store import ConfigRecord

#: Versions kept parsed, the most recently used: a create, its boot and its delete use one; a VM
#: list of thousands parses each as before (each ~5 KiB parsed: the bound keeps memory flat).
KEPT = 64


class ParsedConfigs:
    """The :class:`VMConfig` of stored configuration versions, each parsed once while it stays among
    the :data:`KEPT` most recently used.

    A VM's id and a version number name one document for good: VM ids are never reused (the
    ``vms`` table's ids are ``AUTOINCREMENT``), a VM's versions only grow and none is rewritten
    (a rollback stores the next one; ADR 8). So the document of ``(vm_id, version)`` read now is
    the one parsed before. Parsing one (pydantic, the manifest's validators) cost ~0.1 ms, and a
    create+delete parsed the same version five times (issue 11). Parsed configurations are
    frozen models: sharing one is safe.
    """

    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._parsed: OrderedDict[tuple[int, int], VMConfig] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, stored: ConfigRecord) -> VMConfig:
        """``stored``'s document as a :class:`VMConfig` (pydantic's ValidationError if it is not one)."""
        key = (stored.vm_id, stored.version)
        with self._lock:
            parsed = self._parsed.get(key)
            if parsed is not None:
                self._parsed.move_to_end(key)
                return parsed
        parsed = VMConfig.model_validate(stored.config)
        with self._lock:
            self._parsed[key] = parsed
            if len(self._parsed) > self._kept:
                self._parsed.popitem(last=False)
        return parsed
