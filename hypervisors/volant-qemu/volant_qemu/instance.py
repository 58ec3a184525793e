"""A running QEMU, as the orchestrator sees it (implements :class:`volant_core.launch.Instance`)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from volant_core.cgroups import VmCgroup, remove_quietly
from volant_core.channels import SerialLaneChannel
from volant_core.launch import AgentChannel
from volant_core.processes import VmmProcess
from volant_qemu.consolelog import keep_capped
from volant_qemu.paths import VmPaths
from volant_qemu.qmp import QmpClient, QmpError

log = logging.getLogger(__name__)

#: Longest wait for the QMP session that sends the power button.
POWERDOWN_QMP_TIMEOUT = 5.0
#: Longest wait for the process to disappear after SIGKILL.
REAP_TIMEOUT = 10.0


class QemuInstance:
    """One VM's QEMU process with its agent channel, console and QMP monitor."""

    def __init__(
        self,
        process: VmmProcess,
        paths: VmPaths,
        accelerator: str,
        *,
        log_cap: int,
        cgroup: VmCgroup | None = None,
    ) -> None:
        """Wrap ``process`` running the VM whose files live in ``paths``, booted with ``accelerator``;
        its console log is rotated whenever it passes ``log_cap`` bytes while QEMU runs; ``cgroup``
        (QEMU's own) is removed once QEMU is gone.
        """
        self.pid = process.pid
        self.accelerator = accelerator
        self.agent_channel: AgentChannel = SerialLaneChannel(paths.present_agent_sockets())
        self.console_socket: Path | None = paths.console_socket
        self.console_log: Path | None = paths.console_log
        self.paths = paths
        self._process = process
        self._cgroup = cgroup
        self._stop_lock = threading.Lock()
        self._cleaned = threading.Event()
        keep_capped(paths.console_log, log_cap, self.alive, self._cleaned)

    def __repr__(self) -> str:
        return f"QemuInstance(pid={self.pid}, accelerator={self.accelerator!r}, vm_dir={self.paths.vm_dir})"

    def wait(self, timeout: float | None = None) -> int | None:
        """Exit status once QEMU is gone (negative: killed by that signal; 0 for an adopted process).

        None if it still runs after ``timeout``. The first time the exit is
        seen, the VM's sockets and pidfile are removed, and QEMU's cgroup.
        """
        status = self._process.wait(timeout)
        if status is not None and not self._cleaned.is_set():
            self._cleaned.set()
            self.paths.remove_runtime_files()
            remove_quietly(self._cgroup)
        return status

    def alive(self) -> bool:
        """Whether QEMU still runs."""
        return self._process.alive()

    def stop(self, timeout: float) -> int | None:
        """Press the ACPI power button through QMP, wait ``timeout`` s for the guest to power off, then kill.

        Returns the exit status (0 after a clean poweroff); calling it again
        returns the same status.
        """
        with self._stop_lock:
            if self.alive() and self._press_power_button(min(timeout, POWERDOWN_QMP_TIMEOUT)):
                self.wait(timeout)
            self.kill()
            return self.wait(REAP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL QEMU at once; a no-op when it is already gone."""
        self._process.kill()

    def qmp(self, *, timeout: float = POWERDOWN_QMP_TIMEOUT) -> QmpClient:
        """A new QMP session with this VM's QEMU (close it after use: QEMU serves one at a time)."""
        return QmpClient(self.paths.qmp_socket, timeout=timeout)

    def _press_power_button(self, timeout: float) -> bool:
        try:
            with self.qmp(timeout=timeout) as session:
                session.execute("system_powerdown", timeout=timeout)
        except QmpError as exc:
            log.warning("cannot send system_powerdown to QEMU %d (%s): killing it", self.pid, exc)
            return False
        return True
