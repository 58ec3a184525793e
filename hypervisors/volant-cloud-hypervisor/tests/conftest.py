"""Shared fixtures for the Cloud Hypervisor backend tests.

The ``cloud-hypervisor`` binary cannot run on these hosts (no registry ships it, and their KVM does
not run stock guests), so the tests use ``chstandin``, a contract-validating TEST DOUBLE of it (see
``chstandin/__init__.py``), and the contract files copied into ``contracts/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: The contract files this package is tested against (copies of the project's shared contracts).
CONTRACTS = Path(__file__).parent / "contracts"

# The stand-in is a package of these tests (not of the distribution): make it importable.
sys.path.insert(0, str(Path(__file__).parent))
