"""Fixtures of the end-to-end tests (real QEMU guests)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from volant_core.guest import GuestArtifacts
from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.pytest_plugin import require_qemu


@pytest.fixture(scope="module")
def hello_web(volant_guest: GuestArtifacts, hello_manifest_module: dict[str, Any]) -> Iterator[RunningDaemon]:
    """One daemon and one running guest, ``web``, of examples/hello-http for a whole test module."""
    require_qemu()
    with running_daemon(volant_guest) as daemon:
        daemon.request("POST", "/api/v1/plugins", hello_manifest_module)
        assert daemon.request("POST", "/api/v1/vms", {"name": "web", "plugin": "hello-http"}).status == 201
        assert daemon.wait_for_status("web", {"running", "crashed"})["status"] == "running"
        yield daemon
