"""volantd killed with -9 between QEMU's spawn and its QMP socket answering, then started again:
no QEMU runs without a row, and DELETE leaves none.

The window is made wide by a real QEMU started through a wrapper (``VOLANT_QEMU_BINARY``) that
waits for a gate file before it execs ``qemu-system-x86_64`` with the same pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core.cli.client import ApiError
from volant_core.guest import GuestArtifacts
from volant_core.processes import read_cmdline
from volant_core.testing.daemon import volantd_process, wait_for_vm_status
from volant_core.testing.processes import pid_alive, processes_mentioning, scratch_dir
from volant_core.testing.pytest_plugin import require_qemu
from volant_core.testing.waiting import eventually, free_port

pytestmark = pytest.mark.e2e

WRAPPER = """#!/bin/sh
case " $* " in
  *" -pidfile "*)
    echo $$ > {mark}
    while [ ! -e {gate} ]; do sleep 0.05; done ;;
esac
exec {qemu} "$@"
"""


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A short state directory; every process naming it is killed at the end."""
    with scratch_dir("vf-") as path:
        try:
            yield path
        finally:
            (path / "gate").touch()  # a wrapper still waiting goes on (and is killed)


def _wrapper(state_dir: Path) -> Path:
    """The gated QEMU wrapper script, in ``state_dir`` (so the fixture's cleanup finds its process)."""
    qemu = shutil.which("qemu-system-x86_64")
    assert qemu is not None
    script = state_dir / "qemu-gated"
    script.write_text(WRAPPER.format(mark=state_dir / "spawned", gate=state_dir / "gate", qemu=qemu))
    script.chmod(0o755)
    (state_dir / "spawned").touch()
    (state_dir / "spawned").chmod(0o666)  # the wrapper runs as the VMM user, which creates nothing here
    return script


@pytest.mark.parametrize("qemu_started", [True, False], ids=["qemu-running", "before-exec"])
def test_a_launch_cut_short_leaves_no_qemu(
    volant_guest: GuestArtifacts, hello_manifest: dict[str, Any], state_dir: Path, qemu_started: bool
) -> None:
    require_qemu()
    port = free_port()
    env = {
        **os.environ,
        "VOLANT_KERNEL": str(volant_guest.kernel),
        "VOLANT_INITRAMFS": str(volant_guest.initramfs),
        "VOLANT_QEMU_BINARY": str(_wrapper(state_dir)),
        "VOLANT_QEMU_ACCEL": "tcg",
    }
    vm_run_dir = str(state_dir / "run")
    with volantd_process(state_dir, port, env=env) as first:
        api = first.client(timeout=120)
        assert api.send("POST", "/api/v1/plugins", hello_manifest).status == 201

        def create() -> None:
            try:
                api.send("POST", "/api/v1/vms", {"name": "cut", "plugin": "hello-http"})
            except ApiError:
                pass  # volantd is killed while it answers

        creating = threading.Thread(target=create, daemon=True)
        creating.start()
        mark = state_dir / "spawned"
        eventually(lambda: mark.exists() and mark.read_text().strip(), "the launch to spawn QEMU's wrapper")
        pid = int(mark.read_text())
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(30)
        creating.join(30)
    assert pid_alive(pid), "the spawned process outlives volantd"
    if qemu_started:
        (state_dir / "gate").touch()
        eventually(
            lambda: (
                (read_cmdline(pid) or [""])[0].endswith("qemu-system-x86_64")
                and next(Path(vm_run_dir).rglob("qemu.pid"), None) is not None
            ),
            "the real QEMU to run and write its pidfile",
        )

    with volantd_process(state_dir, port, env=env) as second:
        api = second.client(timeout=120)
        vm = wait_for_vm_status(api, "cut", {"crashed"}, timeout=60)
        assert not pid_alive(pid), "the QEMU of a launch cut short is killed at recovery"
        assert processes_mentioning(vm_run_dir) == []
        assert "launch" in vm["status_reason"]
        (state_dir / "gate").touch()  # a wrapper left behind would exec QEMU now
        assert api.send("DELETE", "/api/v1/vms/cut").status == 204
        assert processes_mentioning(vm_run_dir) == []
        assert api.json("GET", "/api/v1/vms") == []
