"""A running Cloud Hypervisor, as the orchestrator sees it (a :class:`volant_core.launch.Instance`)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from volant_cloud_hypervisor.api import ChApiError, CloudHypervisorApi
from volant_cloud_hypervisor.channel import HybridVsockChannel
from volant_cloud_hypervisor.console import CappedLog, ConsoleRelay
from volant_cloud_hypervisor.events import VmmEvent, watch_events
from volant_cloud_hypervisor.paths import VmPaths
from volant_core.cgroups import VmCgroup, remove_quietly
from volant_core.launch import AgentChannel
from volant_core.processes import VmmProcess

log = logging.getLogger(__name__)

#: Longest wait for one API call made while stopping.
STOP_API_TIMEOUT = 5.0
#: How long the VMM gets to end after ``vmm.shutdown`` before SIGKILL.
VMM_SHUTDOWN_WAIT = 5.0
#: Longest wait for the process to disappear after SIGKILL.
REAP_TIMEOUT = 10.0
#: The exit status reported for a VMM killed because its guest rebooted (a crash, even when adopted).
REBOOT_STATUS = -signal.SIGKILL


class CloudHypervisorInstance:
    """One VM's Cloud Hypervisor process with its agent channel, console relay and event watcher."""

    def __init__(
        self, process: VmmProcess, paths: VmPaths, *, log_cap: int, cgroup: VmCgroup | None = None
    ) -> None:
        """Wrap ``process`` running the VM whose files live in ``paths``; its console log is kept
        under ``log_cap`` bytes (plus one rotated file); ``cgroup`` (the VMM's) is removed once the
        VMM is gone.
        """
        self.pid = process.pid
        self.accelerator = "kvm"
        self.agent_channel: AgentChannel = HybridVsockChannel(paths.vsock_socket)
        self.console_socket: Path | None = paths.console_socket
        self.console_log: Path | None = paths.console_log
        self.paths = paths
        #: The event that made this instance kill its VMM (a guest reboot or panic), if any.
        self.reboot: VmmEvent | None = None
        self._process = process
        self._cgroup = cgroup
        self._stop_lock = threading.Lock()
        self._cleaned = threading.Event()
        self._relay = ConsoleRelay(
            paths.serial_socket, paths.console_socket, CappedLog(paths.console_log, log_cap), self.alive
        ).start()
        watch_events(paths.event_monitor, self._on_event, self.alive, self._cleaned)

    def __repr__(self) -> str:
        return f"CloudHypervisorInstance(pid={self.pid}, vm_dir={self.paths.vm_dir})"

    def api(self, *, timeout: float = STOP_API_TIMEOUT) -> CloudHypervisorApi:
        """A client of this VM's REST API (pause, resume, snapshot, resize, hot-plug ...)."""
        return CloudHypervisorApi(self.paths.api_socket, timeout=timeout)

    def wait(self, timeout: float | None = None) -> int | None:
        """Exit status once the VMM is gone (negative: killed by that signal; 0 for an adopted process;
        :data:`REBOOT_STATUS` when it was killed because its guest rebooted). None if it still runs
        after ``timeout``. The first time the exit is seen, the sockets, pidfile and cgroup are removed.
        """
        status = self._process.wait(timeout)
        if status is None:
            return None
        if not self._cleaned.is_set():
            self._cleaned.set()
            self._relay.stop()
            self.paths.remove_runtime_files()
            remove_quietly(self._cgroup)
        return REBOOT_STATUS if self.reboot is not None else status

    def alive(self) -> bool:
        """Whether the VMM still runs."""
        return self._process.alive()

    def stop(self, timeout: float) -> int | None:
        """Graceful stop: ``vm.power-button``, wait ``timeout`` s for the guest to power off (the VMM
        then exits), ``vmm.shutdown``, wait, then SIGKILL. Returns the exit status (0 after a clean
        poweroff); calling it again returns the same status.
        """
        with self._stop_lock:
            if self.alive() and self._call("power_button"):
                self.wait(timeout)
            if self.alive() and self._call("shutdown_vmm"):
                self.wait(VMM_SHUTDOWN_WAIT)
            self.kill()
            return self.wait(REAP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL the VMM at once; a no-op when it is already gone."""
        self._process.kill()

    def _call(self, method: str) -> bool:
        """Call the API ``method``; whether it was accepted."""
        try:
            with self.api() as api:
                getattr(api, method)()
        except ChApiError as exc:
            log.warning("Cloud Hypervisor %d refused %s (%s)", self.pid, method, exc)
            return False
        return True

    def _on_event(self, event: VmmEvent) -> None:
        """A guest reboot (or panic) is a crash: Cloud Hypervisor would reset the guest in the same
        process, so a panicking guest would loop unseen. Kill the VMM; :meth:`wait` reports it.
        """
        if event.is_reboot and self.reboot is None and self.alive():
            log.warning(
                "guest of Cloud Hypervisor %d reset (%s/%s): treated as a crash, killing the VMM",
                self.pid,
                event.source,
                event.event,
            )
            self.reboot = event
            self.kill()
