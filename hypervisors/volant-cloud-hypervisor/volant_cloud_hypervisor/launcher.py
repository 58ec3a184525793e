"""Starting Cloud Hypervisor for a launch spec, and finding it again after a daemon restart."""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from typing import Any

from volant_cloud_hypervisor.api import ChApiError, CloudHypervisorApi, api_answers
from volant_cloud_hypervisor.binary import require_binary
from volant_cloud_hypervisor.command import api_socket_argument, build_command
from volant_cloud_hypervisor.confine import check_confinable, prepare_files
from volant_cloud_hypervisor.instance import REAP_TIMEOUT, CloudHypervisorInstance
from volant_cloud_hypervisor.paths import VmPaths
from volant_cloud_hypervisor.settings import CloudHypervisorSettings
from volant_cloud_hypervisor.vmconfig import VmFiles, build_vm_config, check_spec
from volant_core.cgroups import VmCgroup, remove_quietly
from volant_core.context import PluginContext
from volant_core.errors import LaunchError
from volant_core.launch import LaunchSpec, log_tail
from volant_core.processes import AdoptedProcess, ChildProcess, read_cmdline
from volant_core.vmm_confinement import VmmConfinement
from volant_core.vmm_files import APPEND_FILE

#: How long Cloud Hypervisor may take to answer on its API socket before the launch counts as failed.
API_READY_TIMEOUT = 15.0
#: Poll interval while waiting for the API socket.
READY_POLL_INTERVAL = 0.05
#: Longest wait for ``vm.create`` or ``vm.boot`` to be answered.
BOOT_API_TIMEOUT = 30.0


class CloudHypervisorLauncher:
    """Implements :class:`volant_core.launch.Launcher` with ``cloud-hypervisor``."""

    def __init__(
        self,
        settings: CloudHypervisorSettings | None = None,
        *,
        confinement: VmmConfinement | None = None,
        ready_timeout: float = API_READY_TIMEOUT,
    ) -> None:
        """Run guests as ``settings`` say (default: from the ``VOLANT_CLOUD_HYPERVISOR_*``
        variables; the daemon passes the plugin's validated settings), confined as ``confinement``
        says (default: from the ``VOLANT_VMM_*`` variables); wait up to ``ready_timeout`` s for the API.
        """
        self._settings = settings or CloudHypervisorSettings.from_environment()
        self._confinement = confinement or VmmConfinement.from_environment()
        self._ready_timeout = ready_timeout

    @classmethod
    def from_context(cls, context: PluginContext) -> CloudHypervisorLauncher:
        """The launcher of the daemon's ``cloud-hypervisor`` plugin, with its context's settings."""
        assert isinstance(context.options, CloudHypervisorSettings)
        return cls(context.options, confinement=VmmConfinement.from_settings(context.settings))

    def launch(self, spec: LaunchSpec) -> CloudHypervisorInstance:
        """Start Cloud Hypervisor bare, as the VM's own identity, in its own session; once its API
        answers, put it in the VM's cgroup, then create and boot the VM over the API (so no guest
        instruction runs outside the group), and return.

        The pidfile is written right after the spawn, so that a daemon dying before this returns
        leaves no VMM that :meth:`adopt` cannot find. Raises :class:`LaunchError` (quoting the end of
        the VMM's logs when it failed) and, whatever fails after the spawn, leaves no process and no
        cgroup behind.
        """
        binary = require_binary(self._settings.binary)
        spec.check_boot_files()
        check_spec(spec)
        paths = VmPaths(spec.vm_dir)
        argv = build_command(paths, binary=binary)
        identity = self._confinement.identity(spec.vsock_cid)
        if identity is not None:
            check_confinable(spec)
        spec.vm_dir.mkdir(parents=True, exist_ok=True)
        paths.remove_runtime_files()  # a stale socket must not look like this launch's
        paths.event_monitor.unlink(missing_ok=True)  # events are per launch
        cgroup = self._confinement.cgroup(spec.name, spec.vm_dir)
        if cgroup is not None:
            cgroup.create(spec.cpu_cores, self._confinement.memory_limit(spec.memory_mb))
        try:
            files = (
                prepare_files(spec, identity, self._confinement.state_dir)
                if identity is not None
                else VmFiles.of(spec)
            )
            config = build_vm_config(spec, files)
            output_fd = os.open(paths.output_log, APPEND_FILE, 0o600)
            with os.fdopen(output_fd, "ab") as output:
                log_start = output.tell()
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    **(identity.popen_arguments() if identity is not None else {}),
                )
        except BaseException as exc:
            remove_quietly(cgroup)
            if isinstance(exc, OSError):
                raise LaunchError(f"cannot start {binary}: {exc}") from exc
            raise
        process = ChildProcess(popen)
        try:
            spawned = AdoptedProcess.attach(popen.pid)
            if spawned is not None:  # else it already exited: the API wait reports how
                paths.record_pid(popen.pid, spawned.start_time)
            self._wait_for_api(process, paths, log_start)
            if cgroup is not None:
                cgroup.add(popen.pid)
            _boot(paths, config, log_start)
            return CloudHypervisorInstance(
                process, paths, log_cap=self._settings.console_log_max_bytes, cgroup=cgroup
            )
        except BaseException:
            process.kill()
            process.wait(REAP_TIMEOUT)
            remove_quietly(cgroup)
            paths.remove_runtime_files()
            raise

    def adopt(self, spec: LaunchSpec, pid: int | None) -> CloudHypervisorInstance | None:
        """The Cloud Hypervisor ``pid`` if it still runs this VM (the backend's pidfile names it, with
        its start time, and its argv names ``spec.vm_dir``'s API socket); its console relay and event
        watcher are attached again, and its cgroup is removed once it is gone. Otherwise None, after
        killing the process this VM's pidfile names (a launch the daemon died in) and removing its
        sockets, pidfile and cgroup.
        """
        paths = VmPaths(spec.vm_dir)
        recorded = _recorded_vmm(paths)
        if recorded is not None and pid == recorded.pid:
            return CloudHypervisorInstance(
                recorded,
                paths,
                log_cap=self._settings.console_log_max_bytes,
                cgroup=self._existing_cgroup(spec),
            )
        if recorded is not None:
            recorded.kill()
            recorded.wait(REAP_TIMEOUT)
        paths.remove_runtime_files()
        remove_quietly(self._existing_cgroup(spec))
        return None

    def _existing_cgroup(self, spec: LaunchSpec) -> VmCgroup | None:
        """The cgroup the VMM of ``spec`` was started in, if cgroups are on and the host has them."""
        try:
            return self._confinement.cgroup(spec.name, spec.vm_dir)
        except LaunchError:
            return None

    def _wait_for_api(self, process: ChildProcess, paths: VmPaths, log_start: int) -> None:
        deadline = time.monotonic() + self._ready_timeout
        while True:
            status = process.wait(READY_POLL_INTERVAL)
            if status is not None:
                raise LaunchError(
                    f"Cloud Hypervisor exited with status {status} while starting; "
                    f"{_tails(paths, log_start)}",
                    details={"exit_status": status, "log": str(paths.vmm_log)},
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LaunchError(
                    f"Cloud Hypervisor did not answer on {paths.api_socket} within "
                    f"{self._ready_timeout:g} s; {_tails(paths, log_start)}"
                )
            if paths.api_socket.exists() and api_answers(paths.api_socket, min(remaining, 2.0)):
                return


def _boot(paths: VmPaths, config: dict[str, Any], log_start: int) -> None:
    """``vm.create`` with ``config``, then ``vm.boot``; :class:`LaunchError` quoting the VMM's
    answer and logs when it refuses either."""
    try:
        with CloudHypervisorApi(paths.api_socket, timeout=BOOT_API_TIMEOUT) as api:
            api.create(config)
            api.boot()
    except ChApiError as exc:
        raise LaunchError(
            f"Cloud Hypervisor did not boot the VM: {exc}; {_tails(paths, log_start)}",
            details={"log": str(paths.vmm_log)},
        ) from exc


def _recorded_vmm(paths: VmPaths) -> AdoptedProcess | None:
    """The live process of the VM's pidfile (same pid and start time) whose argv names the VM's API
    socket; None when there is none.
    """
    recorded = paths.recorded_pid()
    if recorded is None:
        return None
    process = AdoptedProcess.attach(*recorded)
    argv = read_cmdline(recorded[0]) or []
    if process is None or ("--api-socket", api_socket_argument(paths)) not in set(itertools.pairwise(argv)):
        return None
    return process


def _tails(paths: VmPaths, start: int) -> str:
    """The end of what this launch wrote to the VMM's output (from byte ``start``) and its log file."""
    output = f"end of {paths.output_log}:\n{log_tail(paths.output_log, start)}"
    return f"{output}\nend of {paths.vmm_log}:\n{log_tail(paths.vmm_log)}"
