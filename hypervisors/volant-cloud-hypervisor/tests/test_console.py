"""The console relay: the guest's output to a capped log and to every user of the console socket,
what users type to the VMM's serial port, and a new connection whenever the VMM drops the port.
"""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from volant_cloud_hypervisor.console import CappedLog, ConsoleRelay, rotated_path

from volant_core.testing.waiting import eventually


def test_the_log_is_rotated_past_its_cap_and_appended_otherwise(tmp_path: Path) -> None:
    log = CappedLog(tmp_path / "console.log", max_bytes=10)
    log.append(b"first\n")
    log.append(b"second\n")  # 13 bytes: over the cap, moved aside
    assert rotated_path(log.path).read_bytes() == b"first\nsecond\n"
    assert not log.path.exists()
    log.append(b"third\n")
    assert log.path.read_bytes() == b"third\n"


class FakeSerialPort:
    """Stands for the VMM's serial socket: accepts clients one by one; ``send`` writes to the current one."""

    def __init__(self, path: Path) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen()
        self.clients: list[socket.socket] = []
        self.received = b""
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.clients.append(client)
            threading.Thread(target=self._read, args=(client,), daemon=True).start()

    def _read(self, client: socket.socket) -> None:
        try:
            while data := client.recv(4096):
                self.received += data
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
        for client in self.clients:
            client.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vchc-") as name:
        yield Path(name)


def test_output_input_and_reconnection(short_dir: Path) -> None:
    port = FakeSerialPort(short_dir / "serial.sock")
    running = threading.Event()
    running.set()
    relay = ConsoleRelay(
        short_dir / "serial.sock",
        short_dir / "console.sock",
        CappedLog(short_dir / "console.log", 4096),
        running.is_set,
    ).start()
    try:
        eventually(lambda: port.clients, "the relay connects to the serial port")
        user = eventually(lambda: _connect(short_dir / "console.sock"), "the console socket")
        port.clients[0].sendall(b"login: ")
        assert user.recv(100) == b"login: "
        user.sendall(b"root\n")
        eventually(lambda: port.received == b"root\n", "typed input reaches the serial port")
        port.clients[0].shutdown(socket.SHUT_RDWR)  # the VMM drops the port: the relay connects again
        eventually(lambda: len(port.clients) == 2, "the relay reconnects")
        port.clients[1].sendall(b"again\n")
        eventually(lambda: (short_dir / "console.log").read_bytes() == b"login: again\n", "both in the log")
        user.close()
    finally:
        relay.stop()
        port.close()
    assert not (short_dir / "console.sock").exists()


def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    sock.settimeout(10)
    return sock
