"""The ``ip_allocations`` table: which IPv4 address each VM leases."""

from __future__ import annotations

import ipaddress

from volant_core.errors import ValidationError
from volant_core.store.integrity import integrity_errors
from volant_core.store.models import IPAllocation, utcnow
from volant_core.store.records import LeaseRecord
from volant_core.store.repository import Repository, first
from volant_core.store.statements import Table

_LEASES = Table(IPAllocation)


class IPRepository(Repository):
    """IP leases. Only leased addresses have a row, one per VM at most, deleted with the VM.

    Choosing the address is not the store's job (see the ``volant_allocate_ip``
    hook); lease the chosen one in the transaction that chose it.
    """

    def lease(self, vm_id: int, ip: str) -> LeaseRecord:
        """Lease ``ip`` to VM ``vm_id``; :class:`ConflictError` if either is already in a lease."""
        try:
            address = str(ipaddress.IPv4Address(ip))
        except ValueError:
            raise ValidationError(f"ip_address: {ip!r} is not an IPv4 address", field="ip_address") from None
        row = {"ip_address": address, "vm_id": vm_id, "leased_at": utcnow()}
        with self._atomic(), integrity_errors("IP lease", row, missing=f"vm id {vm_id} does not exist"):
            _LEASES.insert(self._db, row)
            rows = _LEASES.rows(self._db, '"ip_address" = ?', (address,))
            return LeaseRecord(**first(rows, f"no lease of {address}"))

    def leased(self) -> list[LeaseRecord]:
        """Every lease, in numeric address order."""
        leases = [LeaseRecord(**row) for row in _LEASES.rows(self._db)]
        return sorted(leases, key=lambda lease: ipaddress.IPv4Address(lease.ip_address))

    def release(self, vm_id: int) -> str | None:
        """End the lease of VM ``vm_id``; return the address it held, or None if it held none."""
        with self._atomic():
            rows = _LEASES.rows(self._db, '"vm_id" = ?', (vm_id,))
            _LEASES.delete(self._db, '"vm_id" = ?', (vm_id,))
            return rows[0]["ip_address"] if rows else None
