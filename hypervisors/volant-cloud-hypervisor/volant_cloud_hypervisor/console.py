"""The serial console relay: the backend's own process between Cloud Hypervisor's serial socket and
the user.

Cloud Hypervisor serves its serial port (``--serial socket=``) to one client and keeps no log. The
relay, a thread of the daemon that launched or adopted the VM, is that client: it appends everything
the guest prints to ``console.log`` (rotated to ``console.log.1`` past the cap, appended across
restarts), and serves ``console.sock``, where any number of users read the output and type input
(``volar vms console``). A new daemon re-attaches a relay when it adopts the VM; what the guest
printed while no daemon ran is lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from volant_core.vmm_files import APPEND_FILE

log = logging.getLogger(__name__)

#: How long the relay waits for the VMM's serial socket between attempts (seconds).
RETRY_INTERVAL = 0.1
#: How often the relay checks that it should still run (seconds).
TICK = 0.5
CHUNK = 65536
#: How long a stopping relay waits for the rest of what the VMM printed (seconds).
DRAIN_TIMEOUT = 0.5


def rotated_path(path: Path) -> Path:
    """Where the previous part of the console log ``path`` is kept: ``console.log.1``."""
    return path.with_name(path.name + ".1")


class CappedLog:
    """An append-only log moved to its rotated file whenever it passes ``max_bytes``."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes

    def append(self, data: bytes) -> None:
        """Append ``data``, then rotate if the log passed its cap."""
        # never through a link: a confined VMM may add entries to the VM's directory
        descriptor = os.open(self.path, APPEND_FILE, 0o600)
        with os.fdopen(descriptor, "ab") as out:
            out.write(data)
            size = out.tell()
        if size > self.max_bytes:
            os.replace(self.path, rotated_path(self.path))


class ConsoleRelay:
    """Relays one VM's serial socket to its console log and to the users of its console socket."""

    def __init__(
        self, serial_socket: Path, console_socket: Path, log_file: CappedLog, running: Callable[[], bool]
    ) -> None:
        """Relay ``serial_socket`` while ``running()`` to ``log_file`` and to ``console_socket``."""
        self.serial_socket = serial_socket
        self.console_socket = console_socket
        self.log = log_file
        self._running = running
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"ch-console-{serial_socket.parent.name}", daemon=True
        )

    def start(self) -> ConsoleRelay:
        """Start relaying in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop relaying and close every socket (the VMM keeps running)."""
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _active(self) -> bool:
        return not self._stopped.is_set() and self._running()

    def _run(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            self.console_socket.unlink()
        listener.bind(str(self.console_socket))
        listener.listen()
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ, "listener")
        serial: socket.socket | None = None
        users: list[socket.socket] = []
        try:
            while self._active():
                if serial is None and (serial := self._connect_serial()) is not None:
                    selector.register(serial, selectors.EVENT_READ, "serial")
                for key, _ in selector.select(TICK if serial is not None else RETRY_INTERVAL):
                    if key.data == "listener":
                        user, _ = listener.accept()
                        users.append(user)
                        selector.register(user, selectors.EVENT_READ, "user")
                    elif key.data == "user":
                        self._read_in(key.fileobj, serial, users, selector)  # type: ignore[arg-type]
                    elif serial is not None and not self._relay_out(serial, users, selector):
                        # The VMM closed the port (it ends, or serves another client): connect again.
                        selector.unregister(serial)
                        serial.close()
                        serial = None
            if serial is not None:
                self._drain(serial, users, selector)
        except OSError as exc:
            log.warning("console relay of %s ended: %s", self.serial_socket, exc)
        finally:
            for sock in (listener, *users, *([serial] if serial is not None else [])):
                sock.close()
            with contextlib.suppress(FileNotFoundError):
                self.console_socket.unlink()

    def _drain(
        self, serial: socket.socket, users: list[socket.socket], selector: selectors.BaseSelector
    ) -> None:
        """Relay what the VMM printed before it ended (up to its end of file, or a short wait)."""
        serial.settimeout(DRAIN_TIMEOUT)
        with contextlib.suppress(OSError):
            while self._relay_out(serial, users, selector):
                pass

    def _connect_serial(self) -> socket.socket | None:
        """A connection to the VMM's serial socket, or None when it does not take one now."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.serial_socket))
        except OSError:
            sock.close()
            return None
        return sock

    def _relay_out(
        self, serial: socket.socket, users: list[socket.socket], selector: selectors.BaseSelector
    ) -> bool:
        """Relay what the guest printed; False once the VMM closed the port."""
        data = serial.recv(CHUNK)
        if data:
            self._write_out(data, users, selector)
        return bool(data)

    def _write_out(self, data: bytes, users: list[socket.socket], selector: selectors.BaseSelector) -> None:
        try:
            self.log.append(data)
        except OSError as exc:
            log.warning("cannot write console log %s: %s", self.log.path, exc)
        for user in list(users):
            try:
                user.sendall(data)
            except OSError:
                self._drop(user, users, selector)

    def _read_in(
        self,
        user: socket.socket,
        serial: socket.socket | None,
        users: list[socket.socket],
        selector: selectors.BaseSelector,
    ) -> None:
        try:
            data = user.recv(CHUNK)
        except OSError:
            data = b""
        if not data:
            self._drop(user, users, selector)
        elif serial is not None:  # typed while the VMM's port is not connected: lost, as on a UART
            serial.sendall(data)

    @staticmethod
    def _drop(user: socket.socket, users: list[socket.socket], selector: selectors.BaseSelector) -> None:
        selector.unregister(user)
        users.remove(user)
        user.close()
