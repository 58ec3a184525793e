"""The stand-in's "VM": kestrel run as a host process, with the state and events Cloud Hypervisor has.

The main thread owns kestrel (it is started with a parent-death signal, which Linux ties to the
thread that started it) and acts on what API calls ask through a queue: power button, shutdown,
reboot. Guest behaviour the contract describes: the power button shuts the guest down and the VMM
exits 0; a guest reboot resets it inside the same process (kestrel started again), and so does
kestrel's death when the kernel command line says ``panic=-1`` (PID 1 dying panics a guest kernel).

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
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from chstandin.argv import CommandLine
from chstandin.streams import SerialPort
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
#: ``--disk image_type=`` → the API's ``ImageType``.
IMAGE_TYPES = {"raw": "Raw", "qcow2": "Qcow2", "vhd": "FixedVhd", "vhdx": "Vhdx"}


def _size_bytes(size: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)


class Machine:
    """One VM of the stand-in: files in ``vm_dir`` (the API socket's directory), prefixed ``chstandin``."""

    def __init__(self, command: CommandLine) -> None:
        self.command = command
        self.api_socket = Path(command.pairs("--api-socket")["path"])
        self.vm_dir = self.api_socket.parent
        self.kestrel_socket = self.vm_dir / "chstandin-kestrel.sock"
        self.requests_log = self.vm_dir / "chstandin-requests.log"
        self.violations_log = self.vm_dir / "chstandin-violations.log"
        self.state = "Running"
        self.devices: dict[str, str] = {}
        self.cpus = int(command.pairs("--cpus").get("boot", "1"))
        self.memory = _size_bytes(command.pairs("--memory").get("size", "512M"))
        self.lock = threading.Lock()
        self.todo: queue.Queue[str] = queue.Queue()
        self._events = command.pairs("--event-monitor").get("path")
        self._log_file = command.one("--log-file")
        serial = command.pairs("--serial")
        self.serial = (
            SerialPort(Path(serial["socket"]), self.vm_dir / "chstandin-serial-input.log")
            if "socket" in serial
            else None
        )
        self._kestrel: subprocess.Popen[bytes] | None = None
        self._expect_kestrel_exit = False

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
        """Refuse, as Cloud Hypervisor would, a kernel that is neither an ELF vmlinux nor a bzImage."""
        kernel = Path(str(self.command.one("--kernel")))
        try:
            head = kernel.read_bytes()[:0x206]
        except OSError as exc:
            raise SystemExit(f"Error booting VM: cannot open kernel {kernel}: {exc}") from None
        if not (head.startswith(b"\x7fELF") or head[0x202:0x206] == b"HdrS"):
            raise SystemExit(f"Error booting VM: {kernel} is not a PVH vmlinux (ELF) or a bzImage")

    def boot(self) -> None:
        """Start the guest: kestrel as a host process serving on :attr:`kestrel_socket`."""
        cmdline = str(self.command.one("--cmdline") or "")
        initramfs = self.command.one("--initramfs")
        spec = LaunchSpec(
            name="standin",
            vm_dir=self.vm_dir,
            cpu_cores=self.cpus,
            memory_mb=self.memory >> 20,
            kernel=Path(str(self.command.one("--kernel"))),
            vsock_cid=int(self.command.pairs("--vsock").get("cid", "3")),
            initramfs=Path(initramfs) if isinstance(initramfs, str) else None,
            kernel_args=tuple(cmdline.split()),
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
        """Boot, then act on queued requests until the VMM ends; the exit status."""
        self.event("vmm", "starting")
        self.event("vm", "booting")
        self.boot()
        self.event("vm", "booted")
        while True:
            try:
                action = self.todo.get(timeout=0.1)
            except queue.Empty:
                self._watch_guest()
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
        if "panic=-1" in str(self.command.one("--cmdline") or "").split():
            self.reboot()

    def stop(self) -> None:
        """End the guest (the VMM is exiting)."""
        self.halt_guest()

    # ------------------------------------------------------------ answers

    def vm_config(self) -> dict[str, Any]:
        """The VM's configuration as ``vm.info`` reports it (a ``VmConfig``)."""
        command = self.command
        payload = {"kernel": str(command.one("--kernel")), "cmdline": str(command.one("--cmdline") or "")}
        if command.one("--initramfs") is not None:
            payload["initramfs"] = str(command.one("--initramfs"))
        config: dict[str, Any] = {
            "cpus": {"boot_vcpus": self.cpus, "max_vcpus": self.cpus},
            "memory": {"size": self.memory},
            "payload": payload,
            "disks": [
                {
                    "path": disk["path"],
                    "readonly": disk.get("readonly") in ("on", "true"),
                    **({"serial": disk["serial"]} if "serial" in disk else {}),
                    **({"image_type": IMAGE_TYPES[disk["image_type"]]} if "image_type" in disk else {}),
                    **(
                        {"backing_files": disk["backing_files"] in ("on", "true")}
                        if "backing_files" in disk
                        else {}
                    ),
                }
                for disk in command.all_pairs("--disk")
            ],
            "net": [
                {key: int(value) if key == "mtu" else value for key, value in net.items()}
                for net in command.all_pairs("--net")
            ],
            "devices": [{"path": device["path"]} for device in command.all_pairs("--device")],
        }
        vsock = command.pairs("--vsock")
        if vsock:
            config["vsock"] = {"cid": int(vsock.get("cid", "3")), "socket": vsock["socket"]}
        serial = command.pairs("--serial")
        if "socket" in serial:
            config["serial"] = {"mode": "Socket", "socket": serial["socket"]}
        return config


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
