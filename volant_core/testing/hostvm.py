"""``test-host-process``: a TEST hypervisor backend that runs kestrel as a host process, with no VM.

For tests only: dozens of emulated guests do not fit a small CI machine, yet
concurrency and lifecycle tests want real agents, real processes and real
sockets. This backend boots nothing and isolates nothing. :meth:`HostProcessLauncher.launch`
finds the runtime manifest where a guest's kestrel would (``volant.manifest=``
on the kernel command line, else ``/volant/manifest.json`` in the initramfs
layers), writes it to the VM directory and starts the real agent there
(``python -m volant_core.agent --listen-unix VM_DIR/agent.sock``) in its own
session. The orchestrator reaches it over the same UNIX-socket agent channel as
a guest's; the workload runs on the host as the user running volantd.

Register the module as a plugin, e.g. with :func:`host_process_daemon` or the
``volantd_host_process`` pytest fixture.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from volant_core import hookimpl
from volant_core.agent.constants import CMDLINE_MANIFEST_KEY, MANIFEST_FILE
from volant_core.channels import UnixSocketChannel
from volant_core.errors import LaunchError, ValidationError
from volant_core.guest.cpio import initramfs_files
from volant_core.launch import MAX_SOCKET_PATH, AgentChannel, HypervisorDescriptor, LaunchSpec
from volant_core.manifest import decode_from_guest
from volant_core.processes import AdoptedProcess, ChildProcess, VmmProcess, read_cmdline
from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.kestrel import kestrel_argv, spawn_kestrel
from volant_core.testing.processes import descendants, processes_mentioning

#: Plugin and hypervisor name; "test" says it is no real backend.
NAME = "test-host-process"
#: kestrel's agent socket, the manifest it reads and its output (kestrel's and the workload's),
#: all in the VM directory.
SOCKET_NAME = "agent.sock"
MANIFEST_NAME = "manifest.json"
LOG_NAME = "kestrel.log"
#: Longest wait for the process to disappear after SIGKILL.
REAP_TIMEOUT = 10.0
#: Overcommit ratios of :func:`host_process_daemon`: its VMs hold no vCPUs and no guest memory.
HOST_PROCESS_OVERCOMMIT = 1000.0


class HostProcessInstance:
    """A kestrel host process standing in for a VMM (implements :class:`volant_core.launch.Instance`)."""

    def __init__(self, process: VmmProcess, vm_dir: Path) -> None:
        """Wrap ``process``, a kestrel serving on ``vm_dir/agent.sock``."""
        self.pid = process.pid
        self.accelerator = "none"
        self.agent_channel: AgentChannel = UnixSocketChannel(vm_dir / SOCKET_NAME, exclusive=False)
        self.console_socket: Path | None = None
        self.console_log: Path | None = vm_dir / LOG_NAME
        self.vm_dir = vm_dir
        self._process = process
        self._stop_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HostProcessInstance(pid={self.pid}, vm_dir={self.vm_dir})"

    def wait(self, timeout: float | None = None) -> int | None:
        """kestrel's exit status once it is gone (0 for an adopted one), None if it runs after ``timeout``."""
        return self._process.wait(timeout)

    def alive(self) -> bool:
        """Whether kestrel still runs."""
        return self._process.alive()

    def stop(self, timeout: float) -> int | None:
        """SIGTERM kestrel (it stops its workload and exits, as on a power button), kill it after
        ``timeout`` seconds; return its exit status. Idempotent.
        """
        with self._stop_lock:
            if self.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGTERM)
                self.wait(timeout)
            self.kill()
            return self.wait(REAP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL kestrel and everything it started (the workload leads a session of its own, so
        killing kestrel alone would orphan it). A no-op once kestrel is gone.
        """
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGSTOP)  # frozen, it starts nothing new while we look
        for pid in descendants(self.pid):
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(ProcessLookupError):
                    kill(pid, signal.SIGKILL)
        self._process.kill()


class HostProcessLauncher:
    """Implements :class:`volant_core.launch.Launcher` by running kestrel on the host."""

    def launch(self, spec: LaunchSpec) -> HostProcessInstance:
        """Write the spec's manifest to ``spec.vm_dir`` and start kestrel there; return at once.

        Raises :class:`LaunchError` when there is no manifest or the socket path
        is too long; nothing is started then.
        """
        manifest = boot_manifest(spec)
        socket_path = spec.vm_dir / SOCKET_NAME
        if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
            raise LaunchError(f"agent socket path {socket_path} is longer than {MAX_SOCKET_PATH} bytes")
        spec.vm_dir.mkdir(parents=True, exist_ok=True)
        manifest_file = spec.vm_dir / MANIFEST_NAME
        manifest_file.write_bytes(manifest)
        socket_path.unlink(missing_ok=True)  # a stale socket must not look like a listening agent
        try:
            popen = spawn_kestrel(kestrel_argv(socket_path, manifest_file), spec.vm_dir / LOG_NAME)
        except OSError as exc:
            raise LaunchError(f"cannot start kestrel: {exc}") from exc
        return HostProcessInstance(ChildProcess(popen), spec.vm_dir)

    def adopt(self, spec: LaunchSpec, pid: int | None) -> HostProcessInstance | None:
        """The kestrel ``pid`` if it still serves ``spec.vm_dir``'s socket, else None: then any other
        kestrel serving that socket (a launch the daemon died in before it recorded the pid) is
        killed and the stale socket removed.
        """
        socket_path = spec.vm_dir / SOCKET_NAME
        process = AdoptedProcess.attach(pid) if pid is not None else None
        if process is not None and _serves(process.pid, socket_path):
            return HostProcessInstance(process, spec.vm_dir)
        for leftover in processes_mentioning(str(socket_path)):  # a launch the daemon died in
            found = AdoptedProcess.attach(leftover)
            if found is not None and _serves(leftover, socket_path):
                HostProcessInstance(found, spec.vm_dir).kill()
        socket_path.unlink(missing_ok=True)
        return None


def _serves(pid: int, socket_path: Path) -> bool:
    """Whether process ``pid`` is a kestrel listening on ``socket_path``."""
    return ("--listen-unix", str(socket_path)) in itertools.pairwise(read_cmdline(pid) or [])


def boot_manifest(spec: LaunchSpec) -> bytes:
    """The manifest JSON a guest booted from ``spec`` would find: the kernel command line's
    ``volant.manifest=`` first, else ``/volant/manifest.json`` in the initramfs (the last layer
    holding it wins). Raises :class:`LaunchError` when there is none.
    """
    prefix = CMDLINE_MANIFEST_KEY + "="
    for word in spec.cmdline.split():
        if word.startswith(prefix):
            try:
                return json.dumps(decode_from_guest(word[len(prefix) :])).encode()
            except ValidationError as err:
                raise LaunchError(f"kernel command line: {err.message}", field="kernel_args") from None
    if spec.initramfs is not None:
        try:
            found = initramfs_files(spec.initramfs.read_bytes()).get(MANIFEST_FILE)
        except (OSError, ValueError) as exc:
            raise LaunchError(f"cannot read initramfs {spec.initramfs}: {exc}", field="initramfs") from None
        if found is not None:
            return found
    raise LaunchError(f"no {prefix} on the kernel command line and no {MANIFEST_FILE} in the initramfs")


@hookimpl
def volant_hypervisors() -> list[HypervisorDescriptor]:
    """Register ``test-host-process``."""
    return [
        HypervisorDescriptor(
            name=NAME,
            factory=HostProcessLauncher,
            description="TEST ONLY: runs kestrel and the workload as host processes; no VM, no isolation",
            capabilities=frozenset({"adopt", "test-only"}),
        )
    ]


@contextlib.contextmanager
def placeholder_boot_files() -> Iterator[dict[str, Path]]:
    """Empty kernel and initramfs files (this backend boots neither; volantd still composes each
    VM's boot media from them): ``{"kernel": path, "initramfs": path}``, removed at the end.
    """
    boot = Path(tempfile.mkdtemp(prefix="volant-boot-"))
    try:
        placeholders = {"kernel": boot / "no-kernel", "initramfs": boot / "no-initramfs"}
        for path in placeholders.values():
            path.write_bytes(b"")
        yield placeholders
    finally:
        shutil.rmtree(boot, ignore_errors=True)


@contextlib.contextmanager
def host_process_daemon(
    *, plugins: Iterable[tuple[str, object]] = (), **settings: Any
) -> Iterator[RunningDaemon]:
    """:func:`~volant_core.testing.daemon.running_daemon` with this backend registered and chosen.

    The backend boots no kernel, but volantd still composes each VM's boot
    media: it gets empty placeholder kernel and initramfs files (so no guest
    image is built). Its VMs take no vCPUs or memory, so the overcommit ratios
    default to :data:`HOST_PROCESS_OVERCOMMIT` (tests of many VMs fit a small
    machine; tests of admission set their own). ``plugins`` and ``settings`` are passed on.
    """
    with (
        placeholder_boot_files() as placeholders,
        running_daemon(
            plugins=[(NAME, sys.modules[__name__]), *plugins],
            **{
                "hypervisor": NAME,
                "cpu_overcommit": HOST_PROCESS_OVERCOMMIT,
                "memory_overcommit": HOST_PROCESS_OVERCOMMIT,
                **placeholders,
                **settings,
            },
        ) as daemon,
    ):
        yield daemon
