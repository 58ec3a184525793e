"""The agent channel of a QEMU guest: the UNIX sockets behind its agent virtio-serial ports ("lanes")."""

from __future__ import annotations

import socket
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path


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


class VirtioSerialChannel:
    """Implements :class:`volant_core.launch.AgentChannel` over QEMU's chardev sockets, one per
    virtio-serial port of the agent (``volant.agent``, ``volant.agent.1``, ...).

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
        return f"VirtioSerialChannel(paths={self.paths!r})"

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
