"""Starting QEMU for a launch spec, and finding it again after a daemon restart."""

from __future__ import annotations

import itertools
import os
import subprocess
import time

from volant_core.cgroups import VmCgroup, remove_quietly
from volant_core.context import PluginContext
from volant_core.errors import LaunchError
from volant_core.launch import LaunchSpec, log_tail
from volant_core.processes import AdoptedProcess, ChildProcess, read_cmdline
from volant_core.vmm_confinement import VmmConfinement
from volant_qemu.accel import choose_accelerator
from volant_qemu.binary import require_binary
from volant_qemu.command import CPU_MODELS, build_command, qmp_argument
from volant_qemu.confine import close_all, prepare_handover
from volant_qemu.consolelog import rotate_if_over
from volant_qemu.instance import POWERDOWN_QMP_TIMEOUT, REAP_TIMEOUT, QemuInstance
from volant_qemu.paths import VmPaths
from volant_qemu.qmp import QmpClient, QmpError
from volant_qemu.settings import QemuSettings

#: How long QEMU may take to open its QMP socket before the launch counts as failed.
QMP_READY_TIMEOUT = 15.0
#: Poll interval while waiting for the QMP socket.
READY_POLL_INTERVAL = 0.05


class QemuLauncher:
    """Implements :class:`volant_core.launch.Launcher` with ``qemu-system-x86_64``."""

    def __init__(
        self,
        settings: QemuSettings | None = None,
        binary: str | None = None,
        *,
        confinement: VmmConfinement | None = None,
        ready_timeout: float = QMP_READY_TIMEOUT,
    ) -> None:
        """Run guests as ``settings`` say (default: from the ``VOLANT_QEMU_*`` variables; the daemon
        passes the plugin's validated settings), with ``binary`` overriding theirs, confined as
        ``confinement`` says (default: from the ``VOLANT_VMM_*`` variables); wait up to
        ``ready_timeout`` s for QMP.
        """
        self._settings = settings or QemuSettings.from_environment()
        self._binary = binary
        self._confinement = confinement or VmmConfinement.from_environment()
        self._ready_timeout = ready_timeout

    @classmethod
    def from_context(cls, context: PluginContext) -> QemuLauncher:
        """The launcher of the daemon's ``qemu`` plugin, with the settings its context carries."""
        assert isinstance(context.options, QemuSettings)
        return cls(context.options, confinement=VmmConfinement.from_settings(context.settings))

    def launch(self, spec: LaunchSpec) -> QemuInstance:
        """Start QEMU in its own session and return once its QMP socket answers.

        The spawned process is recorded in the VM's spawn record at once, so that a daemon dying
        before this returns leaves no QEMU that :meth:`adopt` cannot find. Raises
        :class:`LaunchError` (quoting the end of ``qemu.log`` when QEMU itself failed) and, whatever
        fails after the spawn, leaves no process behind.
        """
        binary = self._binary or require_binary(self._settings.binary)
        spec.check_boot_files()
        paths = VmPaths(spec.vm_dir)
        paths.check_socket_lengths()
        identity = self._confinement.identity(spec.vsock_cid)
        spec.vm_dir.mkdir(parents=True, exist_ok=True)
        accel = choose_accelerator(spec, binary=binary, setting=self._settings.accel)
        rotate_if_over(paths.console_log, self._settings.console_log_max_bytes)
        cgroup = self._confinement.cgroup(spec.name, spec.vm_dir)
        if cgroup is not None:
            cgroup.create(spec.cpu_cores, self._confinement.memory_limit(spec.memory_mb))
        handover = None
        try:
            handover = (
                prepare_handover(spec, identity, self._confinement.state_dir)
                if identity is not None
                else None
            )
            argv = build_command(spec, accel=accel, binary=binary, handover=handover)
            log_fd = os.open(paths.qemu_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            with os.fdopen(log_fd, "ab") as qemu_log:
                log_start = qemu_log.tell()
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=qemu_log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=handover.descriptors if handover else (),
                    **(identity.popen_arguments() if identity is not None else {}),
                )
        except BaseException as exc:
            remove_quietly(cgroup)
            if isinstance(exc, OSError):
                raise LaunchError(f"cannot start {binary}: {exc}") from exc
            raise
        finally:
            if handover is not None:
                close_all(handover.descriptors)
        process = ChildProcess(popen)
        record = None
        try:
            spawned = AdoptedProcess.attach(popen.pid)
            if spawned is not None:  # else it already exited: the QMP wait reports how
                record = (popen.pid, spawned.start_time)
                paths.record_spawn(*record)
            self._wait_for_qmp(process, paths, log_start)
            if cgroup is not None:
                cgroup.add(popen.pid)
            _resume(paths)
            return QemuInstance(
                process, paths, accel, log_cap=self._settings.console_log_max_bytes, cgroup=cgroup
            )
        except BaseException:
            process.kill()
            process.wait(REAP_TIMEOUT)
            remove_quietly(cgroup)
            if record is not None and paths.spawned() == record:
                paths.spawn_record.unlink(missing_ok=True)
            raise

    def adopt(self, spec: LaunchSpec, pid: int | None) -> QemuInstance | None:
        """The QEMU ``pid`` if it still runs this VM (its argv names ``spec.vm_dir``'s QMP socket
        and pidfile, and the pidfile holds ``pid``); otherwise None, after killing any other process
        this VM's launches left running (the pidfile's QEMU, the spawn record's process: a launch
        the daemon died in) and removing their sockets, pidfile and spawn record.
        """
        paths = VmPaths(spec.vm_dir)
        if pid is not None and _owns_vm(pid, paths):
            process = AdoptedProcess.attach(pid)
            argv = read_cmdline(pid)
            if process is not None and argv is not None:
                return QemuInstance(
                    process,
                    paths,
                    _accelerator_of(argv),
                    log_cap=self._settings.console_log_max_bytes,
                    cgroup=self._existing_cgroup(spec),
                )
        _kill_leftovers(paths)
        paths.remove_runtime_files()
        remove_quietly(self._existing_cgroup(spec))
        return None

    def _existing_cgroup(self, spec: LaunchSpec) -> VmCgroup | None:
        """The cgroup the QEMU of ``spec`` was started in, if cgroups are on and the host has them."""
        try:
            return self._confinement.cgroup(spec.name, spec.vm_dir)
        except LaunchError:
            return None

    def _wait_for_qmp(self, process: ChildProcess, paths: VmPaths, log_start: int) -> None:
        deadline = time.monotonic() + self._ready_timeout
        while True:
            status = process.wait(READY_POLL_INTERVAL)
            if status is not None:
                raise LaunchError(
                    f"QEMU exited with status {status} while starting; end of {paths.qemu_log}:\n"
                    f"{log_tail(paths.qemu_log, log_start)}",
                    details={"exit_status": status, "log": str(paths.qemu_log)},
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LaunchError(
                    f"QEMU did not open its QMP socket {paths.qmp_socket} within {self._ready_timeout:g} s; "
                    f"end of {paths.qemu_log}:\n{log_tail(paths.qemu_log, log_start)}"
                )
            if paths.pidfile_pid() != process.pid:
                # QEMU writes its pidfile (holding its lock) before it opens any socket: until then a
                # socket in vm_dir may still be a stale one, or another live QEMU's.
                continue
            try:
                QmpClient(paths.qmp_socket, timeout=min(remaining, 2.0)).close()
            except QmpError:
                continue
            return


def _resume(paths: VmPaths) -> None:
    """Let the guest run: QEMU starts paused (``-S``) until it is in its cgroup."""
    try:
        with QmpClient(paths.qmp_socket, timeout=POWERDOWN_QMP_TIMEOUT) as session:
            session.execute("cont", timeout=POWERDOWN_QMP_TIMEOUT)
    except QmpError as exc:
        raise LaunchError(f"cannot start the guest's CPUs (QMP cont): {exc}") from exc


def _runs_vm(argv: list[str], paths: VmPaths) -> bool:
    pairs = set(itertools.pairwise(argv))
    return ("-pidfile", str(paths.pidfile)) in pairs and ("-qmp", qmp_argument(paths)) in pairs


def _owns_vm(pid: int, paths: VmPaths) -> bool:
    """Whether ``pid`` is a live QEMU of this VM: its argv names the VM's pidfile and QMP socket,
    and the pidfile holds ``pid``.
    """
    process = AdoptedProcess.attach(pid)
    argv = read_cmdline(pid)
    return (
        process is not None
        and process.alive()
        and argv is not None
        and _runs_vm(argv, paths)
        and paths.pidfile_pid() == pid
    )


def _kill_leftovers(paths: VmPaths) -> None:
    """SIGKILL and wait for the VM's QEMU that nobody adopts: the live pidfile owner running this
    VM, and the process of the spawn record (the same pid and start time: a QEMU, or what was
    about to exec it).
    """
    owner = paths.pidfile_pid()
    leftovers = [AdoptedProcess.attach(owner) if owner is not None and _owns_vm(owner, paths) else None]
    spawned = paths.spawned()
    if spawned is not None:
        leftovers.append(AdoptedProcess.attach(*spawned))
    for process in leftovers:
        if process is not None:
            process.kill()
            process.wait(REAP_TIMEOUT)


def _accelerator_of(argv: list[str]) -> str:
    pairs = dict(itertools.pairwise(argv))
    accel = pairs.get("-accel", "")
    return accel if accel in CPU_MODELS else "unknown"
