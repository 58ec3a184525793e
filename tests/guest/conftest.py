"""Fixtures for the guest tests: the built artifacts and guests booted with QEMU directly.

Every QEMU started is killed and reaped when its test ends, pass or fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from guest_qemu import QEMU, BootedGuest, qemu_argv

from volant_core.guest import GuestArtifacts, ensure_guest


@pytest.fixture(scope="session")
def guest_artifacts(tmp_path_factory: pytest.TempPathFactory) -> GuestArtifacts:
    """The guest kernel and initramfs, built once per session (cached in ``$VOLANT_TEST_CACHE`` if set)."""
    configured = os.environ.get("VOLANT_TEST_CACHE")
    cache = Path(configured) if configured else tmp_path_factory.mktemp("guest-cache")
    return ensure_guest(cache, log=print)


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


@pytest.fixture
def boot_guest(guest_artifacts: GuestArtifacts) -> Iterator[Callable[..., BootedGuest]]:
    """Boot the base initramfs plus ``layer`` (bytes appended to it) with extra ``kernel_args``."""
    if shutil.which(QEMU) is None:
        pytest.skip(f"{QEMU} is not installed")
    started: list[subprocess.Popen[bytes]] = []
    # UNIX socket paths must stay short (108 bytes): a fresh short temp dir, not tmp_path.
    runtime_dir = tempfile.TemporaryDirectory(prefix="volant-guest-")

    def boot(layer: bytes = b"", kernel_args: tuple[str, ...] = ()) -> BootedGuest:
        runtime = Path(runtime_dir.name) / str(len(started))
        runtime.mkdir()
        initrd = runtime / "initrd"
        initrd.write_bytes(guest_artifacts.initramfs.read_bytes() + layer)
        argv = qemu_argv(guest_artifacts, initrd, runtime, kernel_args)
        with (runtime / "qemu.log").open("wb") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        started.append(process)
        guest = BootedGuest(process, runtime / "agent.sock", runtime / "qmp.sock", runtime / "console.log")
        deadline = time.monotonic() + 30
        while not (guest.agent_socket.exists() and guest.qmp_socket.exists()):
            assert process.poll() is None, (runtime / "qemu.log").read_text()
            assert time.monotonic() < deadline, "QEMU created no sockets"
            time.sleep(0.05)
        return guest

    try:
        yield boot
    finally:
        for process in started:
            _kill(process)
        runtime_dir.cleanup()
