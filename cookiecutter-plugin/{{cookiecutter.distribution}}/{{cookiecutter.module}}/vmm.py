"""The backend: starts one VMM process per VM, finds it again after a volantd restart, stops it.

As generated, the "VMM" is kestrel, Volant's guest agent, run as a process on the host: it serves
the agent API on ``agent.sock`` in the VM's directory and runs the runtime's workload, so the
contract tests pass from the start. To drive a real VMM, change :func:`vmm_command` to its
command line (kernel, initramfs, disks, NICs from the :class:`LaunchSpec`) and
:attr:`VmmInstance.agent_channel` to the channel your VMM gives the guest's kestrel (a UNIX socket
behind virtio-serial or vsock); keep the pidfile, so that :meth:`VmmLauncher.adopt` can tell your
VMM from any other process.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from volant_core.sdk import (
    AdoptedProcess,
    AgentChannel,
    ChildProcess,
    LaunchError,
    LaunchSpec,
    UnixSocketChannel,
    VmmProcess,
    decode_from_guest,
    log_tail,
    read_cmdline,
)

#: Files of one VM's VMM, all in the VM's directory (deleting it removes every trace of the VM).
AGENT_SOCKET = "agent.sock"
MANIFEST_FILE = "manifest.json"
PIDFILE = "vmm.pid"
LOG_FILE = "vmm.log"
#: Seconds the VMM may take to serve the agent socket before the launch fails.
READY_TIMEOUT = 30.0
#: Seconds to wait for the VMM to go after SIGKILL.
REAP_TIMEOUT = 10.0
#: The kernel argument volantd passes a small runtime manifest in.
MANIFEST_ARGUMENT = "volant.manifest="


def vmm_command(spec: LaunchSpec) -> list[str]:
    """The command line of the VMM that boots ``spec``: replace this with your VMM's.

    As generated: kestrel in host mode, serving ``spec.vm_dir/agent.sock``, with the runtime
    manifest volantd put on the kernel command line (written next to it first).
    """
    manifest = next((arg for arg in spec.kernel_args if arg.startswith(MANIFEST_ARGUMENT)), None)
    if manifest is None:
        raise LaunchError(f"no {MANIFEST_ARGUMENT} kernel argument: this backend has no manifest to run")
    manifest_file = spec.vm_dir / MANIFEST_FILE
    manifest_file.write_text(json.dumps(decode_from_guest(manifest.removeprefix(MANIFEST_ARGUMENT))))
    return [
        sys.executable, "-m", "volant_core.agent",
        "--listen-unix", str(spec.vm_dir / AGENT_SOCKET),
        "--manifest-file", str(manifest_file),
    ]  # fmt: skip


class VmmInstance:
    """One running VMM (implements volant-core's ``Instance`` protocol)."""

    def __init__(self, process: VmmProcess, vm_dir: Path) -> None:
        """Wrap ``process``, the VMM of the VM whose directory is ``vm_dir``."""
        self.pid = process.pid
        self.accelerator = "none"
        self.agent_channel: AgentChannel | None = UnixSocketChannel(vm_dir / AGENT_SOCKET, exclusive=False)
        self.console_socket: Path | None = None
        self.console_log: Path | None = vm_dir / LOG_FILE
        self._process = process
        self._stop_lock = threading.Lock()

    def wait(self, timeout: float | None = None) -> int | None:
        """The VMM's exit status once it is gone, or None while it still runs after ``timeout`` s."""
        return self._process.wait(timeout)

    def alive(self) -> bool:
        """Whether the VMM still runs."""
        return self._process.alive()

    def stop(self, timeout: float) -> int | None:
        """Ask the guest to power off (here: SIGTERM), kill the VMM after ``timeout`` s, return its
        exit status. Idempotent.
        """
        with self._stop_lock:
            if self.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGTERM)
                self.wait(timeout)
            self.kill()
            return self.wait(REAP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL the VMM and its process group; a no-op once it is gone."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self._process.kill()


class VmmLauncher:
    """Starts and adopts VMMs (implements volant-core's ``Launcher`` protocol)."""

    def launch(self, spec: LaunchSpec) -> VmmInstance:
        """Start the VMM of ``spec`` in a session of its own and return once it serves the agent
        socket. :class:`LaunchError` (with the end of its log) when it cannot; nothing keeps running then.
        """
        spec.vm_dir.mkdir(parents=True, exist_ok=True)
        (spec.vm_dir / AGENT_SOCKET).unlink(missing_ok=True)  # a stale socket is not this launch's
        argv = vmm_command(spec)
        log = spec.vm_dir / LOG_FILE
        try:
            with log.open("ab") as output:
                start = output.tell()
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as err:
            raise LaunchError(f"cannot start {argv[0]}: {err}") from err
        instance = VmmInstance(ChildProcess(popen), spec.vm_dir)
        try:
            spawned = AdoptedProcess.attach(popen.pid)
            if spawned is not None:
                (spec.vm_dir / PIDFILE).write_text(f"{popen.pid} {spawned.start_time}\n")
            self._wait_until_serving(instance, spec.vm_dir, start)
        except BaseException:
            instance.kill()
            instance.wait(REAP_TIMEOUT)
            raise
        return instance

    def adopt(self, spec: LaunchSpec, pid: int | None) -> VmmInstance | None:
        """The VMM ``pid`` when it still runs this VM (the pidfile names it, with its start time, and
        its command line names this VM's socket); else None, after killing what the pidfile names.
        """
        recorded = _recorded(spec.vm_dir)
        if recorded is not None and recorded.pid == pid:
            return VmmInstance(recorded, spec.vm_dir)
        if recorded is not None:
            VmmInstance(recorded, spec.vm_dir).kill()
        (spec.vm_dir / PIDFILE).unlink(missing_ok=True)
        return None

    @staticmethod
    def _wait_until_serving(instance: VmmInstance, vm_dir: Path, log_start: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not (vm_dir / AGENT_SOCKET).exists():
            status = instance.wait(0.05)
            if status is not None:
                tail = log_tail(vm_dir / LOG_FILE, log_start)
                raise LaunchError(f"the VMM exited with status {status} while starting: {tail}")
            if time.monotonic() > deadline:
                raise LaunchError(f"the VMM did not serve {vm_dir / AGENT_SOCKET} within {READY_TIMEOUT:g} s")


def _recorded(vm_dir: Path) -> AdoptedProcess | None:
    """The live process the VM's pidfile names (same pid, same start time) running this VM."""
    try:
        pid_text, start_time = (vm_dir / PIDFILE).read_text().split()
    except (OSError, ValueError):
        return None
    process = AdoptedProcess.attach(int(pid_text), start_time)
    argv = read_cmdline(int(pid_text)) or []
    if process is None or ("--listen-unix", str(vm_dir / AGENT_SOCKET)) not in itertools.pairwise(argv):
        return None
    return process
