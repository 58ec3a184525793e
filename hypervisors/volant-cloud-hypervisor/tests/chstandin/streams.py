"""The stand-in's byte streams: hybrid vsock in front of kestrel, and the serial port socket."""

from __future__ import annotations

import contextlib
import itertools
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path

#: The first host-side port the stand-in reports in ``OK <port>`` (it counts up, as the VMM does).
FIRST_HOST_PORT = 1024
#: How much guest output the serial port keeps while no client is attached.
SERIAL_BACKLOG = 64 * 1024


def _pump(source: socket.socket, target: socket.socket) -> None:
    """Copy ``source`` to ``target`` until EOF, then half-close ``target``."""
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def splice(a: socket.socket, b: socket.socket) -> None:
    """Relay ``a`` and ``b`` both ways until both directions ended; close both."""
    other = threading.Thread(target=_pump, args=(b, a), daemon=True)
    other.start()
    _pump(a, b)
    other.join()
    a.close()
    b.close()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def serve_hybrid_vsock(path: Path, guest_ports: Callable[[int], Path | None]) -> socketserver.BaseServer:
    """Serve the contract's hybrid vsock handshake on ``path``: ``CONNECT <port>\\n`` is answered
    ``OK <host port>\\n`` and spliced to the UNIX socket ``guest_ports(port)`` (the guest's listener);
    a port nobody listens on gets the connection closed, without an answer.
    """
    host_ports = itertools.count(FIRST_HOST_PORT)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            client: socket.socket = self.request
            line = b""
            while not line.endswith(b"\n") and len(line) < 64:
                byte = client.recv(1)
                if not byte:
                    return
                line += byte
            words = line.decode(errors="replace").split()
            if len(words) != 2 or words[0] != "CONNECT" or not words[1].isdigit():
                return
            target = guest_ports(int(words[1]))
            if target is None:
                return
            guest = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                guest.connect(str(target))
            except OSError:
                guest.close()
                return
            client.sendall(f"OK {next(host_ports)}\n".encode())
            splice(client, guest)

    server = _Server(str(path), Handler)
    threading.Thread(target=server.serve_forever, name="hybrid-vsock", daemon=True).start()
    return server


class SerialPort:
    """The serial port on ``--serial socket=``: one client at a time receives the guest's output (what
    was printed before the first client came is kept, up to a cap); what a client types is recorded
    in ``input_log``.
    """

    def __init__(self, path: Path, input_log: Path) -> None:
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen()
        self._input_log = input_log
        self._client: socket.socket | None = None
        self._backlog = b""
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="serial", daemon=True).start()

    def write(self, data: bytes) -> None:
        """Guest output: to the client, or kept until one comes."""
        with self._lock:
            if self._client is None:
                self._backlog = (self._backlog + data)[-SERIAL_BACKLOG:]
                return
            try:
                self._client.sendall(data)
            except OSError:
                self._client = None

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._client is not None:
                    client.close()  # one client at a time
                    continue
                self._client = client
                backlog, self._backlog = self._backlog, b""
                with contextlib.suppress(OSError):
                    client.sendall(backlog)
            threading.Thread(target=self._read, args=(client,), daemon=True).start()

    def _read(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(4096):
                with self._input_log.open("ab") as log:
                    log.write(data)
        with self._lock:
            if self._client is client:
                self._client = None
        client.close()
