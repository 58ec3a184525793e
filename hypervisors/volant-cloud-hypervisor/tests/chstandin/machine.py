"""The stand-in's "VM": kestrel run as a host process, with the state and events Cloud Hypervisor has.

The VMM starts bare, as the backend starts Cloud Hypervisor: the VM is described by the
``VmConfig`` of ``vm.create`` (already checked against the OpenAPI file) and started by ``vm.boot``.
At that boot the stand-in writes down who it runs as and in which cgroups
(``chstandin-boot.json``: its ``/proc/self/status`` ids and ``/proc/self/cgroup``), for the
confinement tests. The main thread owns kestrel (it is started with a parent-death signal, which
Linux ties to the thread that started it) and acts on what API calls ask through a queue: boot,
power button, shutdown, reboot. Guest behaviour the contract describes: the power button shuts
the guest down and the VMM exits 0; a guest reboot resets it inside the same process (kestrel
started again), and so does kestrel's death when the kernel command line says ``panic=-1`` (PID 1
dying panics a guest kernel).

Test knobs (environment): ``CHSTANDIN_GUEST_IGNORES_POWER_BUTTON=1`` (the guest does not act on it),
``CHSTANDIN_VMM_IGNORES_SHUTDOWN=1`` (a hung VMM: ``vmm.shutdown`` is answered but does nothing).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import queue
import signal
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from chstandin.argv import CommandLine
from chstandin.streams import SerialPort, serve_hybrid_vsock
from volant_core.errors import LaunchError
from volant_core.launch import AGENT_PORT, LaunchSpec
from volant_core.testing.kestrel import kestrel_argv
from volant_core.testing.processes import descendants

VERSION = "v54.0.0"
IGNORE_POWER_BUTTON = "CHSTANDIN_GUEST_IGNORES_POWER_BUTTON"
IGNORE_VMM_SHUTDOWN = "CHSTANDIN_VMM_IGNORES_SHUTDOWN"
#: Seconds kestrel gets to stop its workload after SIGTERM (a guest's shutdown), before SIGKILL.
GUEST_SHUTDOWN_GRACE = 15.0
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
#: What the stand-in writes at ``vm.boot``: the ids and cgroups it runs with.
BOOT_RECORD = "chstandin-boot.json"


class BootRefused(Exception):
    """``vm.boot`` fails as Cloud Hypervisor's would: the API answers 500 with the reason (the
    OpenAPI file lists no error status for it; Cloud Hypervisor answers every failed call so)."""


class Machine:
    """One VM of the stand-in: files in ``vm_dir`` (the API socket's directory), prefixed ``chstandin``."""

    def __init__(self, command: CommandLine) -> None:
        self.command = command
        self.api_socket = Path(command.pairs("--api-socket")["path"])
        self.vm_dir = self.api_socket.parent
        self.kestrel_socket = self.vm_dir / "chstandin-kestrel.sock"
        self.requests_log = self.vm_dir / "chstandin-requests.log"
        self.violations_log = self.vm_dir / "chstandin-violations.log"
        #: The ``VmConfig`` of ``vm.create``; None until then.
        self.config: dict[str, Any] | None = None
        #: None until ``vm.create``, then ``Created``, ``Running`` ...
        self.state: str | None = None
        self.devices: dict[str, str] = {}
        self.cpus = 1
        self.memory = 0
        self.lock = threading.Lock()
        self.todo: queue.Queue[str] = queue.Queue()
        self.booted = threading.Event()
        self._events = command.pairs("--event-monitor").get("path")
        self._log_file = command.one("--log-file")
        self.serial: SerialPort | None = None
        #: The servers of the VM's devices (hybrid vsock), closed when the VMM ends.
        self.servers: list[socketserver.BaseServer] = []
        self._kestrel: subprocess.Popen[bytes] | None = None
        self._expect_kestrel_exit = False

    def create(self, config: dict[str, Any]) -> None:
        """``vm.create``: keep the VM's ``config`` (a ``VmConfig`` the schema allows)."""
        self.config = config
        self.cpus = int(config.get("cpus", {}).get("boot_vcpus", 1))
        self.memory = int(config.get("memory", {}).get("size", 512 << 20))
        self.state = "Created"

    def payload(self, key: str) -> str | None:
        """A value of the created VM's ``payload`` (``kernel``, ``cmdline``, ``initramfs``)."""
        assert self.config is not None
        value = self.config["payload"].get(key)
        return None if value is None else str(value)

    def record_boot(self) -> None:
        """Write :data:`BOOT_RECORD`: the ids and groups the kernel reports for this process now,
        and the cgroups it is in (what the guest would run with)."""
        status = dict(
            line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
        )
        record = {
            "pid": os.getpid(),
            "uid": status["Uid"].split(),
            "gid": status["Gid"].split(),
            "groups": status["Groups"].split(),
            "cgroup": Path("/proc/self/cgroup").read_text().splitlines(),
        }
        (self.vm_dir / BOOT_RECORD).write_text(json.dumps(record))

    # ------------------------------------------------------------ records

    def event(self, source: str, event: str) -> None:
        """Append one event to the event monitor, as Cloud Hypervisor formats them."""
        if self._events is None:
            return
        now = time.time()
        record = {
            "timestamp": {"secs": int(now), "nanos": int((now % 1) * 1e9)},
            "source": source,
            "event": event,
            "properties": None,
        }
        with open(self._events, "a") as out:
            out.write(json.dumps(record, indent=2) + "\n\n")

    def log(self, message: str) -> None:
        """A line of the VMM's own log (``--log-file``, else standard error)."""
        line = f"cloud-hypervisor stand-in (TEST DOUBLE): {message}\n"
        if self._log_file is None:
            sys.stderr.write(line)
        else:
            with open(self._log_file, "a") as out:
                out.write(line)

    def record_request(self, method: str, endpoint: str, status: int) -> None:
        """Append ``METHOD endpoint status`` to the request log the tests read."""
        with self.requests_log.open("a") as out:
            out.write(f"{method} {endpoint} {status}\n")

    def record_violation(self, message: str) -> None:
        """Note a contract violation (the tests assert there is none) and say it on standard error."""
        sys.stderr.write(f"chstandin: CONTRACT VIOLATION: {message}\n")
        with self.violations_log.open("a") as out:
            out.write(message + "\n")

    # ------------------------------------------------------------ the guest

    def check_kernel(self) -> None:
        """Refuse, as Cloud Hypervisor would, a kernel that is neither an ELF vmlinux nor a bzImage,
        or that this process cannot open (:class:`BootRefused`)."""
        kernel = Path(str(self.payload("kernel")))
        try:
            head = kernel.read_bytes()[:0x206]
        except OSError as exc:
            raise BootRefused(f"Error booting VM: cannot open kernel {kernel}: {exc}") from None
        if not (head.startswith(b"\x7fELF") or head[0x202:0x206] == b"HdrS"):
            raise BootRefused(f"Error booting VM: {kernel} is not a PVH vmlinux (ELF) or a bzImage")

    def boot(self) -> None:
        """Start the guest: kestrel as a host process serving on :attr:`kestrel_socket`."""
        assert self.config is not None
        initramfs = self.payload("initramfs")
        spec = LaunchSpec(
            name="standin",
            vm_dir=self.vm_dir,
            cpu_cores=self.cpus,
            memory_mb=self.memory >> 20,
            kernel=Path(str(self.payload("kernel"))),
            vsock_cid=int(self.config.get("vsock", {}).get("cid", 3)),
            initramfs=Path(initramfs) if initramfs is not None else None,
            kernel_args=tuple((self.payload("cmdline") or "").split()),
        )
        manifest = self.vm_dir / "chstandin-manifest.json"
        # Imported here: it loads most of volant_core, which the API need not wait for.
        from volant_core.testing.hostvm import boot_manifest

        try:
            manifest.write_bytes(boot_manifest(spec))
        except LaunchError as err:
            self.log(f"guest has no manifest: {err.message}")
            manifest.unlink(missing_ok=True)
        self.kestrel_socket.unlink(missing_ok=True)
        self._expect_kestrel_exit = False
        self._kestrel = subprocess.Popen(
            kestrel_argv(self.kestrel_socket, manifest),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        threading.Thread(target=self._console, args=(self._kestrel,), daemon=True).start()

    def guest_port(self, port: int) -> Path | None:
        """The UNIX socket of the guest's vsock listener on ``port`` (kestrel's only)."""
        return self.kestrel_socket if port == AGENT_PORT and self.state == "Running" else None

    def signal_guest(self, sig: int) -> None:
        """Send ``sig`` to kestrel's process group (SIGSTOP/SIGCONT: pause and resume)."""
        if self._kestrel is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._kestrel.pid, sig)

    def halt_guest(self, grace: float = GUEST_SHUTDOWN_GRACE) -> None:
        """Shut the guest down: kestrel stops its workload on SIGTERM; SIGKILL after ``grace`` seconds."""
        kestrel, self._kestrel = self._kestrel, None
        if kestrel is None:
            return
        self._expect_kestrel_exit = True
        for sig in (signal.SIGCONT, signal.SIGTERM):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(kestrel.pid, sig)
        try:
            kestrel.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(kestrel.pid, signal.SIGKILL)
            kestrel.wait()
        end_guest_processes()

    def _console(self, kestrel: subprocess.Popen[bytes]) -> None:
        assert kestrel.stdout is not None
        while data := kestrel.stdout.read1(4096):
            if self.serial is not None:
                self.serial.write(data)

    # ------------------------------------------------------------ the main thread

    def run(self) -> int:
        """Act on queued requests (the first: ``vm.boot``'s) until the VMM ends; the exit status."""
        self.event("vmm", "starting")
        while True:
            try:
                action = self.todo.get(timeout=0.1)
            except queue.Empty:
                self._watch_guest()
                continue
            if action == "boot":
                self.event("vm", "booting")
                self._open_devices()
                self.boot()
                self.event("vm", "booted")
                self.booted.set()
                continue
            if action == "power-button":
                if os.environ.get(IGNORE_POWER_BUTTON):
                    self.log("the guest ignores the power button")
                    continue
                self.halt_guest()
                self.event("vm", "shutdown")
                return 0
            if action == "vmm-shutdown":
                if os.environ.get(IGNORE_VMM_SHUTDOWN):
                    self.log("hung: vmm.shutdown does nothing")
                    continue
                self.halt_guest(grace=0)  # the VMM ends now: its guest gets no time to shut down
                self.event("vmm", "shutdown")
                return 0
            if action == "vm-shutdown":
                self.halt_guest()
                self.event("vm", "shutdown")
            if action == "reboot":
                self.reboot()

    def _open_devices(self) -> None:
        """Open the sockets of the created VM's serial port and hybrid vsock device."""
        assert self.config is not None
        serial = self.config.get("serial", {})
        if serial.get("mode") == "Socket":
            self.serial = SerialPort(Path(serial["socket"]), self.vm_dir / "chstandin-serial-input.log")
        vsock = self.config.get("vsock")
        if vsock is not None:
            self.servers.append(serve_hybrid_vsock(Path(vsock["socket"]), self.guest_port))

    def start_boot(self, timeout: float = 30.0) -> None:
        """``vm.boot``: check the created VM can boot (:class:`BootRefused` if not), write down the
        ids and cgroups the VMM runs with, and boot it in the main thread; return once booted."""
        with self.lock:
            if self.state != "Created":
                raise BootRefused(f"Error booting VM: the VM is {self.state}, not Created")
            self.check_kernel()
            self.record_boot()
            self.state = "Running"
        self.todo.put("boot")
        if not self.booted.wait(timeout):
            raise BootRefused(f"Error booting VM: the guest did not start within {timeout:g} s")

    def reboot(self) -> None:
        """Reset the guest in this process, as Cloud Hypervisor does."""
        self.event("vm", "rebooting")
        self.halt_guest()
        with self.lock:
            self.state = "Running"
        self.boot()
        self.event("vm", "rebooted")

    def _watch_guest(self) -> None:
        """kestrel (the guest's PID 1) died on its own: the guest kernel panics; ``panic=-1`` reboots."""
        kestrel = self._kestrel
        if kestrel is None or kestrel.poll() is None or self._expect_kestrel_exit:
            return
        self._kestrel = None
        self.log(f"guest PID 1 exited with {kestrel.returncode}: kernel panic")
        end_guest_processes()  # a reset (or a hung kernel) ends what ran in the guest
        if "panic=-1" in (self.payload("cmdline") or "").split():
            self.reboot()

    def stop(self) -> None:
        """End the guest and close the devices' servers (the VMM is exiting)."""
        self.halt_guest()
        for server in self.servers:
            server.server_close()

    # ------------------------------------------------------------ answers

    def vm_config(self) -> dict[str, Any]:
        """The VM's configuration as ``vm.info`` reports it: the ``VmConfig`` it was created with,
        resized as asked."""
        assert self.config is not None
        cpus = {**self.config.get("cpus", {}), "boot_vcpus": self.cpus}
        cpus["max_vcpus"] = max(self.cpus, int(cpus.get("max_vcpus", 1)))
        return {**self.config, "cpus": cpus, "memory": {**self.config.get("memory", {}), "size": self.memory}}


def become_subreaper() -> None:
    """Make the stand-in the parent of every orphan of its guest (kestrel's workload leads a session
    of its own): :func:`end_guest_processes` then finds them all, as a guest reset ends them all.
    """
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1)


def end_guest_processes() -> None:
    """SIGKILL and reap every process left of the guest (the stand-in's descendants)."""
    left = descendants(os.getpid())
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in left:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _die_with_parent() -> None:
    """In the child: SIGTERM when the stand-in dies (kestrel then stops its workload and exits)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
