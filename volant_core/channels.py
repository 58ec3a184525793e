"""Agent channels the core ships: a UNIX stream socket, TCP, or a pool of serial-port lanes, each
leading to kestrel.

Hypervisor plugins whose agent channel is a UNIX socket on the host (kestrel running as a host
process) reuse :class:`UnixSocketChannel`; those that give the guest the agent's serial ports
(QEMU's virtio-serial chardevs) reuse :class:`SerialLaneChannel`, the core's lane convention, which
kestrel serves on the guest side. :class:`TokenChannel` wraps any of them so that every request
over it carries the VM's agent token, which kestrel's TCP listener asks for.
"""

from __future__ import annotations

import socket
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from volant_core.agent.constants import AGENT_TOKEN_HEADER
from volant_core.launch import AgentChannel


class UnixSocketChannel:
    """Implements :class:`volant_core.launch.AgentChannel` over a UNIX stream socket at ``path``.

    ``exclusive`` says whether the socket carries one connection at a time (a
    serial port behind it) so that callers serialise their requests.
    """

    def __init__(self, path: Path, *, exclusive: bool) -> None:
        """Connect to ``path``; ``exclusive`` as in :class:`~volant_core.launch.AgentChannel`."""
        self.path = path
        self.exclusive = exclusive

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, exclusive={self.exclusive})"

    def connect(self, timeout: float) -> socket.socket:
        """Return a socket connected to ``path`` (``timeout`` applies to connecting and to later I/O).

        Raises ``OSError`` when nothing listens there.
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(str(self.path))
        except OSError:
            sock.close()
            raise
        return sock

    def describe(self) -> str:
        """``unix:<socket path>``."""
        return f"unix:{self.path}"


class TcpChannel:
    """kestrel over TCP (``host:port``): a guest NIC's address, or a port the hypervisor forwards.

    Not exclusive: every request may use a connection of its own. kestrel answers on TCP only
    requests that carry the VM's agent token: the core sends it over every channel it gets (see
    :class:`TokenChannel`), so a plugin returns a plain ``TcpChannel``.
    """

    exclusive = False

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def connect(self, timeout: float) -> socket.socket:
        """A connected TCP socket to kestrel; OSError when nothing answers."""
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def describe(self) -> str:
        """``tcp:<host>:<port>``."""
        return f"tcp:{self.host}:{self.port}"


class _LaneSocket(socket.socket):
    """A socket that gives its lane back once it is really closed.

    That is when :meth:`close` has been called and every ``makefile()`` of it
    (an HTTP answer being read holds one) is closed too; a socket dropped
    without being closed gives its lane back when it is garbage-collected.
    """

    release: Callable[[], object]

    def close(self) -> None:
        """Close the socket; the lane is free once the file descriptor is closed."""
        super().close()
        if self.fileno() == -1:
            self.release()


class SerialLaneChannel:
    """Implements :class:`volant_core.launch.AgentChannel` over the host-side UNIX sockets of a guest's
    agent serial ports, one per port (``volant.agent``, ``volant.agent.1``, ...: see
    :func:`~volant_core.launch.agent_serial_port_name` and :data:`~volant_core.launch.AGENT_LANES`),
    such as QEMU's virtio-serial chardev sockets.

    A serial port carries one connection at a time, so each socket is a lane:
    :meth:`connect` takes a free lane and the returned socket gives it back
    when it is closed. Up to ``len(paths)`` connections are open at once (a
    long streamed answer does not hold up a health probe), hence never
    ``exclusive``. When every lane stays busy for the whole ``timeout``,
    :meth:`connect` raises ``TimeoutError`` naming the channel.
    """

    exclusive = False

    def __init__(self, paths: Sequence[Path]) -> None:
        """The channel over the lane sockets ``paths`` (at least one), lane 0 first."""
        if not paths:
            raise ValueError("a virtio-serial channel needs at least one socket")
        self.paths = tuple(paths)
        self._free = set(range(len(self.paths)))
        self._changed = threading.Condition()

    @property
    def lanes(self) -> int:
        """How many connections the channel carries at once (the agent client keeps one for health probes)."""
        return len(self.paths)

    def __repr__(self) -> str:
        return f"SerialLaneChannel(paths={self.paths!r})"

    def connect(self, timeout: float) -> socket.socket:
        """A socket connected to a free lane, waiting up to ``timeout`` seconds for one to be free
        (``timeout`` also applies to connecting and to later I/O).

        Raises ``TimeoutError`` when no lane is freed in time, ``OSError`` when
        nothing listens on the lane's socket.
        """
        lane = self._take(timeout)
        sock = _LaneSocket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.release = weakref.finalize(sock, self._give_back, lane)
        try:
            sock.settimeout(timeout)
            sock.connect(str(self.paths[lane]))
        except OSError:
            sock.close()
            raise
        return sock

    def describe(self) -> str:
        """``virtio-serial:<socket of lane 0> (<n> lanes)``."""
        return f"virtio-serial:{self.paths[0]} ({len(self.paths)} lanes)"

    def _take(self, timeout: float) -> int:
        """The lowest free lane, now marked busy."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._free, timeout):
                raise TimeoutError(
                    f"all {len(self.paths)} lanes of {self.describe()} stayed busy for {timeout:g} s"
                )
            lane = min(self._free)
            self._free.discard(lane)
            return lane

    def _give_back(self, lane: int) -> None:
        with self._changed:
            self._free.add(lane)
            self._changed.notify()


class TokenChannel:
    """Implements :class:`volant_core.launch.AgentChannel` as ``inner`` does, and asks that every
    request over it carry the VM's agent ``token`` (in :attr:`request_headers`, which
    :class:`~volant_core.agent_client.AgentClient` sends with each request).

    The core wraps every VM's channel in one: kestrel requires the token on TCP and ignores it on
    host-only channels (virtio-serial, vsock), so the host never has to know which one it uses.
    The token never appears in :meth:`describe` or ``repr``.
    """

    def __init__(self, inner: AgentChannel, token: str) -> None:
        """Wrap ``inner``; ``token`` is the VM's agent token."""
        self.inner = inner
        self.exclusive = inner.exclusive
        self.request_headers: Mapping[str, str] = {AGENT_TOKEN_HEADER: token}

    def __repr__(self) -> str:
        return f"TokenChannel({self.inner!r})"

    def __getattr__(self, name: str) -> Any:
        """Optional attributes of the wrapped channel (``lanes``)."""
        return getattr(self.inner, name)

    def connect(self, timeout: float) -> socket.socket:
        """As the wrapped channel."""
        return self.inner.connect(timeout)

    def describe(self) -> str:
        """As the wrapped channel."""
        return self.inner.describe()
