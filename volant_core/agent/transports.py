"""The ways requests reach the handler: TCP, UNIX and vsock sockets, and the virtio-serial port."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import select
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .console import say
from .hangup import HangupWatch
from .httpio import Handler, serve_stream

_WRITE_TIMEOUT_MS = 30_000
_NO_HOST_RECHECK_S = 1.0
_PORT_DISCOVERY_S = 0.05
_LANE_RESCAN_S = 1.0
_SYSFS_PORTS = Path("/sys/class/virtio-ports")


class _ThreadingServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A threaded stream server for any address family (set ``address_family`` before binding)."""

    daemon_threads = True


def start_socket_server(family: int, address: object, handler: Handler) -> socketserver.BaseServer:
    """Serve ``handler`` on a stream socket of ``family`` bound to ``address``, in a daemon thread."""

    class Connection(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with contextlib.suppress(OSError):
                serve_stream(self.request, handler, functools.partial(HangupWatch.on_socket, self.request))

    server_class = type(
        "Server",
        (_ThreadingServer,),
        {"address_family": family, "allow_reuse_address": family != socket.AF_UNIX},
    )
    server = server_class(address, Connection)
    threading.Thread(target=server.serve_forever, name=f"serve-{family}", daemon=True).start()
    return server


def serial_ports(sysfs: Path = _SYSFS_PORTS) -> dict[str, Path]:
    """The named virtio-serial ports whose ``/dev`` node exists yet: name -> node."""
    ports: dict[str, Path] = {}
    for entry in sorted(sysfs.glob("*")):
        with contextlib.suppress(OSError):
            name = (entry / "name").read_text().strip()
            if name and Path("/dev", entry.name).exists():
                ports.setdefault(name, Path("/dev", entry.name))
    return ports


def find_serial_port(name: str, sysfs: Path = _SYSFS_PORTS) -> Path | None:
    """The ``/dev`` node of the virtio-serial port called ``name``, if it exists yet."""
    return serial_ports(sysfs).get(name)


def is_lane_of(port: str, name: str) -> bool:
    """Whether the port ``port`` is a lane of the channel ``name``: ``name`` itself or ``name.<lane>``."""
    return port == name or port.startswith(name + ".")


class SerialStream:
    """A virtio-serial port as a stream; one host connection after another.

    The port is opened once and never closed (closing discards queued data). While no host is
    connected the port reports POLLHUP, and POLLIN too (a read would not block: it returns EOF);
    :meth:`wait_for_host` waits that out, and :meth:`recv` returns ``b""`` when the host goes away,
    ending the current connection.
    """

    def __init__(self, device: Path) -> None:
        self.fd = os.open(device, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLIN)
        self._edges = select.epoll()
        self._edges.register(self.fd, select.EPOLLIN | select.EPOLLET)

    def _events(self, timeout_ms: int | None) -> int:
        return next((ev for _fd, ev in self._poll.poll(timeout_ms)), 0)

    def wait_for_host(self) -> None:
        """Return once a host is connected.

        For as long as no host is connected, poll() reports POLLHUP and POLLIN at once (the driver
        says a read would not block), so neither can be waited on: the wait is on an
        edge-triggered epoll, which the driver wakes when the host opens the port or writes.
        Bytes a departed host left behind wait for the next host, whose client skips any answer
        to them by its request number.
        """
        while self._events(0) & select.POLLHUP:
            self._edges.poll(_NO_HOST_RECHECK_S)

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes; ``b""`` once the host has disconnected."""
        while True:
            events = self._events(None)
            if events & select.POLLIN:
                try:
                    return os.read(self.fd, size)
                except BlockingIOError:
                    continue
            if events & (select.POLLHUP | select.POLLERR):
                return b""

    def hangup_watch(self, on_hangup: Callable[[], None]) -> HangupWatch:
        """A watch for the host leaving during a streamed answer: the port turns readable when it
        does (POLLHUP), and also when bytes come, which can only be the next host's request
        (a request is read whole before its answer, and a host does not pipeline requests).
        """
        return HangupWatch(self.fd, lambda: True, on_hangup)

    def sendall(self, data: bytes) -> None:
        """Write ``data``; :class:`ConnectionError` if the host leaves or stops reading."""
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
                continue
            except BlockingIOError:
                pass
            except OSError as exc:
                raise ConnectionError(f"serial port write failed: {exc}") from exc
            writer = select.poll()
            writer.register(self.fd, select.POLLOUT)
            events = next((ev for _fd, ev in writer.poll(_WRITE_TIMEOUT_MS)), 0)
            if not events & select.POLLOUT:
                raise ConnectionError(errno.EPIPE, "host left the serial port")


def wait_for_serial_port(name: str, timeout: float | None) -> Path | None:
    """The ``/dev`` node of port ``name`` once the driver has created it; None after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while (device := find_serial_port(name)) is None:
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(_PORT_DISCOVERY_S)
    return device


def serve_serial(name: str, handler: Handler) -> None:
    """Serve ``handler`` forever (blocking) on every lane of the virtio-serial channel ``name``.

    The lanes are the ports named ``name`` or ``name.<N>`` (a host opens one connection per lane);
    each is served by a thread of its own from the moment the driver creates its node.
    """
    served: set[str] = set()
    while True:
        for port, device in serial_ports().items():
            if is_lane_of(port, name) and port not in served:
                served.add(port)
                threading.Thread(
                    target=serve_serial_port, args=(port, device, handler), name=f"serial-{port}", daemon=True
                ).start()
        time.sleep(_LANE_RESCAN_S if served else _PORT_DISCOVERY_S)


def serve_serial_port(name: str, device: Path, handler: Handler) -> None:
    """Serve ``handler`` forever (blocking) on the virtio-serial port ``name`` at ``device``."""
    port = SerialStream(device)
    say(f"kestrel: serving on {device} ({name})")
    while True:
        port.wait_for_host()
        try:
            serve_stream(port, handler, port.hangup_watch)
        except Exception as exc:  # the lane must outlive any one connection
            say(f"kestrel: serial connection on {name} dropped: {exc!r}")
