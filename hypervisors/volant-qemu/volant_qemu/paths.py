"""Where one VM's QEMU keeps its sockets, pidfile and logs inside the VM's runtime directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from volant_core.launch import AGENT_LANES, check_socket_paths
from volant_core.vmm_files import write_record


@dataclass(frozen=True)
class VmPaths:
    """The files QEMU creates for one VM, all directly under ``vm_dir``."""

    vm_dir: Path

    @property
    def console_socket(self) -> Path:
        """UNIX socket of the serial console (ttyS0)."""
        return self.vm_dir / "console.sock"

    @property
    def console_log(self) -> Path:
        """Everything the guest wrote on its serial console."""
        return self.vm_dir / "console.log"

    @property
    def agent_sockets(self) -> tuple[Path, ...]:
        """UNIX sockets behind the agent's virtio-serial ports, by lane: ``agent.sock`` (the
        ``volant.agent`` port), then ``agent.1.sock`` (``volant.agent.1``) and so on.
        """
        names = ("agent.sock" if lane == 0 else f"agent.{lane}.sock" for lane in range(AGENT_LANES))
        return tuple(self.vm_dir / name for name in names)

    def present_agent_sockets(self) -> tuple[Path, ...]:
        """The agent sockets QEMU created (a VM started by an older Volant may have fewer lanes);
        the first one alone when there is none.
        """
        present = tuple(sock for sock in self.agent_sockets if sock.exists())
        return present or self.agent_sockets[:1]

    @property
    def qmp_socket(self) -> Path:
        """UNIX socket of the QEMU Machine Protocol monitor."""
        return self.vm_dir / "qmp.sock"

    @property
    def pidfile(self) -> Path:
        """File in which QEMU writes its own pid once it runs."""
        return self.vm_dir / "qemu.pid"

    @property
    def spawn_record(self) -> Path:
        """File naming the process a launch started (pid and start time), written right after the
        spawn: what finds a QEMU whose launch a dying daemon never finished, before its pidfile exists.
        """
        return self.vm_dir / "qemu.spawn"

    def record_spawn(self, pid: int, start_time: str) -> None:
        """Write the spawn record of the process ``pid`` started at ``start_time``."""
        write_record(self.spawn_record, f"{pid} {start_time}\n")  # never through a link QEMU left

    def spawned(self) -> tuple[int, str] | None:
        """(pid, start time) from the spawn record, or None when there is none."""
        try:
            pid, start_time = self.spawn_record.read_text().split()
            return int(pid), start_time
        except (OSError, ValueError):
            return None

    @property
    def qemu_log(self) -> Path:
        """QEMU's own stdout and stderr."""
        return self.vm_dir / "qemu.log"

    @property
    def sockets(self) -> tuple[Path, ...]:
        """Every UNIX socket QEMU listens on for this VM."""
        return (self.console_socket, *self.agent_sockets, self.qmp_socket)

    def check_socket_lengths(self) -> None:
        """Raise :class:`LaunchError` when a socket path would not fit in ``sun_path``."""
        check_socket_paths(self.sockets)

    def pidfile_pid(self) -> int | None:
        """The pid QEMU wrote in its pidfile, or None when there is none (yet)."""
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def remove_runtime_files(self) -> None:
        """Delete the sockets, the pidfile and the spawn record (not the logs); missing files are fine."""
        for path in (*self.sockets, self.pidfile, self.spawn_record):
            path.unlink(missing_ok=True)
