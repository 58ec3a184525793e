"""Where one VM's Cloud Hypervisor keeps its sockets, pidfile, events and logs inside the VM's
runtime directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from volant_core.launch import check_socket_paths
from volant_core.vmm_files import write_record


@dataclass(frozen=True)
class VmPaths:
    """The files of one VM's Cloud Hypervisor, all directly under ``vm_dir``."""

    vm_dir: Path

    @property
    def api_socket(self) -> Path:
        """The REST API socket (``--api-socket path=``)."""
        return self.vm_dir / "api.sock"

    @property
    def vsock_socket(self) -> Path:
        """The host end of the guest's hybrid vsock device (``--vsock socket=``): the agent channel."""
        return self.vm_dir / "vsock.sock"

    @property
    def serial_socket(self) -> Path:
        """Cloud Hypervisor's serial port socket (``--serial socket=``); only the console relay uses it."""
        return self.vm_dir / "serial.sock"

    @property
    def console_socket(self) -> Path:
        """The console relay's socket: what ``volar vms console`` attaches to."""
        return self.vm_dir / "console.sock"

    @property
    def console_log(self) -> Path:
        """Everything the guest wrote on its serial console (kept by the relay, across restarts)."""
        return self.vm_dir / "console.log"

    @property
    def event_monitor(self) -> Path:
        """Where Cloud Hypervisor writes its events (``--event-monitor path=``), one launch's worth."""
        return self.vm_dir / "events.json"

    @property
    def vmm_log(self) -> Path:
        """Cloud Hypervisor's own log (``--log-file``)."""
        return self.vm_dir / "cloud-hypervisor.log"

    @property
    def output_log(self) -> Path:
        """The process's standard output and error, appended by every launch."""
        return self.vm_dir / "cloud-hypervisor.out"

    @property
    def pidfile(self) -> Path:
        """The backend's own pidfile (Cloud Hypervisor writes none): pid and start time."""
        return self.vm_dir / "cloud-hypervisor.pid"

    @property
    def sockets(self) -> tuple[Path, ...]:
        """Every UNIX socket of this VM."""
        return (self.api_socket, self.vsock_socket, self.serial_socket, self.console_socket)

    def check_socket_lengths(self) -> None:
        """Raise :class:`LaunchError` when a socket path would not fit in ``sun_path``."""
        check_socket_paths(self.sockets)

    def record_pid(self, pid: int, start_time: str) -> None:
        """Write the pidfile for the process ``pid`` started at ``start_time`` (atomically; never
        through a link a confined VMM left)."""
        write_record(self.pidfile, f"{pid} {start_time}\n")

    def recorded_pid(self) -> tuple[int, str] | None:
        """(pid, start time) from the pidfile, or None when there is none."""
        try:
            pid, start_time = self.pidfile.read_text().split()
            return int(pid), start_time
        except (OSError, ValueError):
            return None

    def remove_runtime_files(self) -> None:
        """Delete the sockets and the pidfile (not the logs); missing files are fine."""
        for path in (*self.sockets, self.pidfile):
            path.unlink(missing_ok=True)
