"""Deterministic per-VM identities that never leave the VM's own namespace."""

from __future__ import annotations

import hashlib


def mac_address(name: str, attempt: int = 0) -> str:
    """A locally administered unicast MAC derived from the VM name (``attempt`` varies it on a clash)."""
    digest = hashlib.sha256(f"{name}|{attempt}".encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])
