"""The console log on real TCG guests: a restart keeps the previous boot's output, and the log is
rotated to ``console.log.1`` once it passes its cap (at each start and while QEMU runs).
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from volant_qemu.consolelog import rotated_path
from volant_qemu.instance import QemuInstance
from volant_qemu.launcher import QemuLauncher
from volant_qemu.paths import VmPaths
from volant_qemu.settings import QemuSettings

from volant_core.launch import LaunchSpec
from volant_core.testing.waiting import eventually

pytestmark = pytest.mark.e2e

Reap = Callable[[QemuInstance], QemuInstance]
#: What kestrel prints on the console once per boot.
READY = b"kestrel: ready"
#: A small cap (the least the setting allows).
SMALL_CAP = 4096
#: A shell command on the guest's console printing about six times the cap; its last line.
FLOOD, LAST_LINE = b"seq 1 5000\n", b"5000"


def test_a_restart_keeps_the_previous_boots_output(guest_spec: LaunchSpec, volant_reap: Reap) -> None:
    launcher = QemuLauncher(QemuSettings(accel="tcg"))
    log = VmPaths(guest_spec.vm_dir).console_log
    first = volant_reap(launcher.launch(guest_spec))
    eventually(lambda: READY in log.read_bytes(), "the first boot to be ready", timeout=120)
    first.kill()
    assert first.wait(10) is not None
    volant_reap(launcher.launch(guest_spec))
    eventually(lambda: log.read_bytes().count(READY) == 2, "both boots in the console log", timeout=120)


def test_the_log_is_rotated_at_its_cap(guest_spec: LaunchSpec, volant_reap: Reap) -> None:
    log = VmPaths(guest_spec.vm_dir).console_log
    rotated = rotated_path(log)
    guest_spec.vm_dir.mkdir(parents=True)
    previous = b"the previous boot's panic\n" * (SMALL_CAP // 16)
    log.write_bytes(previous)

    launcher = QemuLauncher(QemuSettings(accel="tcg", console_log_max_bytes=SMALL_CAP))
    volant_reap(launcher.launch(guest_spec))
    assert rotated.read_bytes() == previous, "an oversized log is rotated before QEMU starts"
    assert not log.read_bytes().startswith(previous[:100])

    # A user floods the console through its socket: the log is rotated while the guest writes.
    eventually(lambda: READY in log.read_bytes(), "the guest to be ready", timeout=120)
    with socket.socket(socket.AF_UNIX) as console:
        console.connect(str(VmPaths(guest_spec.vm_dir).console_socket))
        console.sendall(FLOOD)
        eventually(lambda: LAST_LINE in rotated.read_bytes() + log.read_bytes(), "the flood to be logged")
    eventually(
        lambda: rotated.read_bytes() != previous and log.stat().st_size <= SMALL_CAP,
        "the running guest's log rotated again, the live log back under its cap",
    )
    assert sorted(p.name for p in guest_spec.vm_dir.glob("console.log*")) == ["console.log", "console.log.1"]
