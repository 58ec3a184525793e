"""Noticing that a client hung up while its streamed answer waits for data from elsewhere.

A relayed stream spends most of its time waiting for the next chunk from
upstream; only the next write to the client would show that the client is gone,
and that write never comes while upstream is quiet. :class:`HangupWatch` watches
the client's connection meanwhile, from a thread of its own, and calls back when
it ends, so the relay can break the wait off and free what it holds.

Standard library only: kestrel uses it in the guest, and volantd's agent proxy on the host.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from collections.abc import Callable
from types import TracebackType


class HangupWatch:
    """Calls ``on_hangup`` (once, from its own thread) if the client leaves before the watch ends.

    ``fileno`` is the client's connection; when it turns readable, ``client_left()`` tells a
    hang-up from bytes the client sent. Either way the watch stops looking. Use it as a context
    manager around the wait.
    """

    def __init__(self, fileno: int, client_left: Callable[[], bool], on_hangup: Callable[[], None]) -> None:
        """Watch ``fileno``; ``client_left()`` is asked once it is readable."""
        self._fileno = fileno
        self._client_left = client_left
        self._on_hangup = on_hangup
        self._wake_reader, self._wake_writer = os.pipe()
        self._thread = threading.Thread(target=self._watch, name="hangup-watch", daemon=True)
        self.fired = False  #: whether the client hung up (and ``on_hangup`` ran)

    @classmethod
    def on_socket(cls, client: socket.socket, on_hangup: Callable[[], None]) -> HangupWatch:
        """A watch of a connected socket whose request has been read: a readable socket with
        nothing to read is closed by its peer (bytes instead, such as a pipelined request, are not).
        """
        return cls(client.fileno(), lambda: socket_closed_by_peer(client), on_hangup)

    def __enter__(self) -> HangupWatch:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        os.write(self._wake_writer, b"x")
        self._thread.join()
        os.close(self._wake_reader)
        os.close(self._wake_writer)

    def _watch(self) -> None:
        try:
            readable, _, _ = select.select([self._fileno, self._wake_reader], [], [])
        except (OSError, ValueError):  # the connection was closed under us: nothing to watch
            return
        if self._wake_reader not in readable and self._client_left():
            self.fired = True
            self._on_hangup()


def socket_closed_by_peer(sock: socket.socket) -> bool:
    """Whether a readable ``sock`` has reached its end (or was reset), without reading from it."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:  # readable, yet nothing came: not an end
        return False
    except OSError:  # reset by the peer: gone as well
        return True


def break_off(sock: socket.socket) -> None:
    """Shut ``sock`` down both ways, so that a read waiting on it (in any thread) returns at once."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
