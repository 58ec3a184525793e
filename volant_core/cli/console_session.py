"""The console session behind ``volar vms console``: the WebSocket to a VM's serial console and
this terminal in raw mode, so every key (Ctrl-C included) goes to the guest; :data:`ESCAPE`
(Ctrl-]) detaches, as in telnet and ``virsh console``.

Apart from :mod:`volant_core.cli.console` so that volar imports websockets only to attach.
"""

from __future__ import annotations

import contextlib
import os
import termios
import threading
import tty
import urllib.parse
from collections.abc import Iterator

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from volant_core.cli.client import ApiClient, Unreachable

#: The byte that detaches from the console: Ctrl-].
ESCAPE = b"\x1d"
#: How :data:`ESCAPE` is typed.
ESCAPE_KEYS = "Ctrl-]"
#: Close codes of a console that ended normally (the VM stopped, or volantd is going away).
NORMAL_CLOSE_CODES = (1000, 1001)


def console_url(base_url: str, name: str) -> str:
    """The WebSocket URL of VM ``name``'s console on the volantd at ``base_url``."""
    parts = urllib.parse.urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = f"{parts.path.rstrip('/')}/ws/v1/vms/{urllib.parse.quote(name, safe='')}/console"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, "", ""))


def open_console(client: ApiClient, name: str) -> ClientConnection:
    """Connect to VM ``name``'s console; ApiError with the API's reason when it is refused."""
    try:
        return connect(
            console_url(client.base_url, name),
            additional_headers=client.credentials(),
            open_timeout=client.timeout,
            close_timeout=2,
        )
    except InvalidStatus as err:
        raise client.error_for(err.response.status_code, bytes(err.response.body or b"")) from None
    except (OSError, TimeoutError, InvalidHandshake) as err:
        raise Unreachable(client.base_url, err) from None


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Raw mode on terminal ``fd`` while inside (nothing to do when ``fd`` is not a terminal)."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)  # keeps what was typed ahead (TCSAFLUSH would drop it)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def pump(websocket: ClientConnection, keys_fd: int, screen_fd: int) -> bool:
    """Copy keys to the guest and its output to the screen until either side ends.

    Returns True when the user detached (:data:`ESCAPE`, or the end of the input).
    """
    detached = threading.Event()

    def keys_to_guest() -> None:
        with contextlib.suppress(OSError, ConnectionClosed):
            while data := os.read(keys_fd, 1024):
                before, escape, _after = data.partition(ESCAPE)
                if before:
                    websocket.send(before)
                if escape:
                    break
        detached.set()
        websocket.close()

    threading.Thread(target=keys_to_guest, name="console-keys", daemon=True).start()
    with contextlib.suppress(ConnectionClosed):
        for message in websocket:
            os.write(screen_fd, message.encode() if isinstance(message, str) else message)
    return detached.is_set()
