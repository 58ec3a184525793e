"""kestrel's entry point: ``/init`` in the guest (``--pid1``), or a host process serving on a UNIX
socket (``--listen-unix PATH --manifest-file FILE``). Both run the same :class:`Agent`."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

from . import dhcp, network, rootfs, seed, shell, system, transports
from .api import AgentApi, TokenGate
from .console import say
from .constants import (
    AGENT_PORT,
    AGENT_TOKEN_FILE,
    CMDLINE_ROOTFS_KEY,
    CMDLINE_ROOTFS_PERSISTENT_KEY,
    GUEST_NIC,
    MANIFEST_FILE,
    MODULES_LIST,
    READY_LINE,
    SERIAL_PORT_NAME,
)
from .manifest import ManifestResult, cmdline_value, load_manifest
from .reaper import Reaper
from .wakeup import SignalSafeEvent
from .workload import Workload

_SERIAL_WAIT_S = 10.0
#: Longest a SIGTERM/SIGINT waits for its handler to run in the main thread.
_SIGNAL_CHECK_S = 0.5


class Agent:
    """The workload, the API over it, and the shutdown sequence; transports are added by the mode."""

    def __init__(self, found: ManifestResult, root: str | None = None) -> None:
        """Serve ``found``'s workload, run inside ``root`` when given (see :class:`Workload`)."""
        self.reaper = Reaper()
        self.workload = Workload(found.manifest, self.reaper, found.error, root)
        self.api = AgentApi(found.manifest, self.workload, self.request_shutdown)
        self._stop = SignalSafeEvent()  # set by the SIGTERM/SIGINT handler too

    def request_shutdown(self) -> None:
        """Ask the main thread to stop the workload and end (power off as PID 1)."""
        self._stop.set()

    def start(self) -> None:
        """Reap children, handle SIGTERM/SIGINT as a shutdown request and start the workload."""
        self.reaper.install()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda _signum, _frame: self.request_shutdown())
        threading.Thread(target=self.workload.run, name="workload", daemon=True).start()

    def wait_for_shutdown(self) -> None:
        """Block until shutdown is requested, then stop the workload."""
        # Waiting with a timeout: a signal delivered to another thread only runs its handler (which
        # sets the event) once the main thread executes Python code again; a plain wait() could miss it.
        while not self._stop.wait(_SIGNAL_CHECK_S):
            pass
        say("kestrel: shutting down")
        self.workload.stop()


def _attempt(what: str, action: Callable[[], object]) -> None:
    """Run one boot step; a failure is logged and the boot goes on (PID 1 must not die)."""
    try:
        action()
    except Exception:
        say(f"kestrel: {what} failed:\n{traceback.format_exc()}")


def _serve_serial(agent: Agent) -> None:
    if transports.wait_for_serial_port(SERIAL_PORT_NAME, _SERIAL_WAIT_S) is None:
        say(f"kestrel: no virtio-serial port {SERIAL_PORT_NAME} yet; still looking")
    threading.Thread(
        target=transports.serve_serial, args=(SERIAL_PORT_NAME, agent.api), name="serial", daemon=True
    ).start()


def _watch_power_buttons(agent: Agent) -> None:
    buttons = system.power_buttons()
    if not buttons:
        say("kestrel: no ACPI power button found")
    for device in buttons:
        threading.Thread(
            target=system.watch_power_button, args=(device, agent.request_shutdown), daemon=True
        ).start()


def _configure_network(cmdline: str, root: str | None) -> None:
    """Configure the guest NIC (over DHCP when the network mode says so), DNS and host name from what
    the network mode put on the command line, in the base image and in the workload's ``root`` when it
    has its own.
    """
    if dhcp.wanted(cmdline):
        say(f"kestrel: {GUEST_NIC} lease (DHCP): {dhcp.request_lease(GUEST_NIC)}")
    config = network.NetworkConfig.from_cmdline(cmdline)
    network.apply(config, ["/", *([root] if root else [])])
    if config.address is not None:
        say(f"kestrel: {GUEST_NIC} is {config.address} (gateway {config.gateway or 'none'})")
    if config.nameservers or config.hostname:
        dns = ",".join(map(str, config.nameservers)) or "unchanged"
        say(f"kestrel: hostname {config.hostname or 'unchanged'}, DNS {dns}")


def _start_console_shell(agent: Agent, cmdline: str) -> None:
    if not shell.console_shell_enabled(cmdline):
        say("kestrel: no console shell (volant.console=off)")
        return
    threading.Thread(
        target=shell.keep_console_shell, args=(agent.reaper,), name="console-shell", daemon=True
    ).start()


def _workload_root(cmdline: str) -> tuple[str | None, str | None]:
    """``(root, error)``: the workload's root when the host attached a root filesystem
    (``volant.rootfs=DEVICE``), or why it could not be assembled.
    """
    device = cmdline_value(cmdline, CMDLINE_ROOTFS_KEY)
    if not device:
        return None, None
    persistent = cmdline_value(cmdline, CMDLINE_ROOTFS_PERSISTENT_KEY) == "1"
    try:
        root, fstype = rootfs.prepare_root(device, persistent=persistent)
    except OSError as exc:
        say(f"kestrel: root filesystem {device}: {exc}")
        return None, f"root filesystem {device} cannot be used: {exc}"
    kind = "read-write, persistent" if persistent else "read-only, under a RAM overlay"
    say(f"kestrel: workload root is {device} ({fstype}, {kind})")
    return str(root), None


def _take_agent_token(path: Path = Path(AGENT_TOKEN_FILE)) -> str | None:
    """The agent token the host put in the initramfs, removed from the file system once read
    (the workload needs it not); None when there is none (an image booted without one).
    """
    try:
        token = path.read_text().strip()
    except OSError:
        return None
    path.unlink(missing_ok=True)
    return token or None


def _listen_on_tcp(agent: Agent, token: str | None) -> None:
    """Serve the agent on TCP port 8080 to requests that carry ``token``; without a token, not at all."""
    if token is None:
        say(f"kestrel: no agent token in {AGENT_TOKEN_FILE}; not listening on TCP")
        return
    gate = TokenGate(agent.api, token)
    transports.start_socket_server(socket.AF_INET, ("0.0.0.0", AGENT_PORT), gate)


def run_pid1() -> None:
    """Boot the guest and serve forever; powers off on shutdown. Never returns."""
    _attempt("mounting file systems", system.mount_filesystems)
    _attempt(
        "loading kernel modules", lambda: say(f"kestrel: {system.load_modules(Path(MODULES_LIST))} modules")
    )
    _attempt("bringing up lo", system.loopback_up)
    cmdline = Path("/proc/cmdline").read_text() if Path("/proc/cmdline").exists() else ""
    found = load_manifest(cmdline, Path(MANIFEST_FILE))
    token = _take_agent_token()
    say(
        f"kestrel: manifest from {found.source}"
        if found.manifest
        else f"kestrel: manifest error: {found.error}"
    )
    root, root_error = _workload_root(cmdline)
    _attempt(f"configuring {GUEST_NIC}", lambda: _configure_network(cmdline, root))
    _attempt("applying the cloud-init seed", lambda: seed.apply_seed(cmdline, root))
    agent = Agent(found, root)
    if root_error is not None:
        agent.workload.refuse(root_error)
    agent.start()
    _attempt("listening on TCP", lambda: _listen_on_tcp(agent, token))
    if hasattr(socket, "AF_VSOCK"):
        address = (socket.VMADDR_CID_ANY, AGENT_PORT)
        _attempt(
            "listening on vsock", lambda: transports.start_socket_server(socket.AF_VSOCK, address, agent.api)
        )
    _attempt("watching the power button", lambda: _watch_power_buttons(agent))
    _attempt("opening the agent serial port", lambda: _serve_serial(agent))
    say(READY_LINE)
    _attempt("starting the console shell", lambda: _start_console_shell(agent, cmdline))
    _attempt("shutting down", agent.wait_for_shutdown)
    system.power_off()


def run_host(socket_path: Path, manifest_file: Path) -> None:
    """Serve on a UNIX socket as an ordinary process until shut down."""
    agent = Agent(load_manifest(None, manifest_file))
    agent.start()
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    server = transports.start_socket_server(socket.AF_UNIX, str(socket_path), agent.api)
    say(READY_LINE)
    try:
        agent.wait_for_shutdown()
    finally:
        server.shutdown()
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kestrel", description="Volant guest agent")
    parser.add_argument("--pid1", action="store_true", help="run as the guest's init (implied when pid is 1)")
    parser.add_argument("--listen-unix", type=Path, help="host mode: serve on this UNIX socket")
    parser.add_argument("--manifest-file", type=Path, default=Path(MANIFEST_FILE), help="manifest JSON file")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` and run in the chosen mode. As PID 1 this never returns, whatever happens."""
    args = _parser().parse_args(argv)
    if not (args.pid1 or os.getpid() == 1):
        if args.listen_unix is None:
            _parser().error("host mode needs --listen-unix PATH")
        run_host(args.listen_unix, args.manifest_file)
        return
    _attempt("kestrel", run_pid1)
    while True:
        threading.Event().wait()


if __name__ == "__main__":
    main()
