"""Fault suite, with the real VMM: volantd killed with SIGKILL while a QEMU guest boots, then started
again on the same state directory. The guest's QEMU is re-adopted and the VM ends ``running`` (what
is true: its QEMU runs and kestrel answers), nothing disagrees, and a delete leaves nothing.

The host-process cases (create, delete, deployment scale-up) are in ``tests/test_fault_kill9.py``;
a kill between QEMU's spawn and its QMP socket in ``test_launch_faults.py``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core.guest import GuestArtifacts
from volant_core.testing.daemon import volantd_process
from volant_core.testing.faults import inconsistencies, settled_vms, vmm_processes
from volant_core.testing.processes import pid_alive, scratch_dir
from volant_core.testing.pytest_plugin import require_qemu
from volant_core.testing.waiting import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A short state directory; every process naming it is killed at the end."""
    with scratch_dir("vq-") as path:
        yield path


def test_killed_while_a_guest_boots(
    volant_guest: GuestArtifacts, hello_manifest: dict[str, Any], state_dir: Path
) -> None:
    require_qemu()
    port = free_port()
    env = {
        **os.environ,
        "VOLANT_KERNEL": str(volant_guest.kernel),
        "VOLANT_INITRAMFS": str(volant_guest.initramfs),
        "VOLANT_QEMU_ACCEL": "tcg",
    }
    with volantd_process(state_dir, port, env=env) as first:
        api = first.client(timeout=120)
        assert api.send("POST", "/api/v1/plugins", hello_manifest).status == 201
        created = api.send("POST", "/api/v1/vms", {"name": "q", "plugin": "hello-http"})
        assert created.status == 201, created.body
        booting = created.json()
        assert booting["status"] == "starting" and booting["pid"], "QEMU runs, the guest is still booting"
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(30)

    assert pid_alive(booting["pid"]), "the guest outlives volantd"
    with volantd_process(state_dir, port, env=env) as second:
        api = second.client(timeout=120)
        [vm] = settled_vms(api, timeout=180)
        assert vm["status"] == "running", vm
        assert vm["pid"] == booting["pid"], "the same QEMU is re-adopted, not a new one"
        assert vmm_processes(state_dir / "run") == {"q": [vm["pid"]]}, "QEMU is found by its VM directory"
        assert inconsistencies([vm], state_dir) == []
        assert api.send("DELETE", "/api/v1/vms/q").status == 204
        assert not pid_alive(booting["pid"])
        assert inconsistencies(api.json("GET", "/api/v1/vms"), state_dir) == []
