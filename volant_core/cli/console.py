"""``volar vms console``: a VM's serial console in this terminal, through the API's WebSocket.

The terminal is put in raw mode, so every key (Ctrl-C included) goes to the
guest; :data:`ESCAPE` (Ctrl-]) detaches, as in telnet and ``virsh console``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import termios
import threading
import tty
import urllib.parse
from collections.abc import Iterator

import click
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from volant_core.cli.client import ApiClient, ApiError, Unreachable
from volant_core.cli.context import pass_client

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


@click.command("console")
@click.argument("name")
@pass_client
def console(client: ApiClient, name: str) -> None:
    """Attach to a VM's serial console; Ctrl-] detaches.

    Keys go to the guest as typed (the terminal is in raw mode, so Ctrl-C
    reaches the guest). Works against a remote volantd, with --api-key.

    Example: volar vms console web-1
    """
    websocket = open_console(client, name)
    with websocket, raw_terminal(sys.stdin.fileno()):
        click.echo(f"Connected to the console of {name}; press {ESCAPE_KEYS} to detach.\r", err=True)
        detached = pump(websocket, sys.stdin.fileno(), sys.stdout.fileno())
    if detached:
        click.echo(f"\r\nDetached from the console of {name}.", err=True)
        return
    reason = websocket.close_reason or "connection closed"
    if websocket.close_code not in NORMAL_CLOSE_CODES:
        raise ApiError(f"the console of {name} ended: {reason} (code {websocket.close_code})", 1)
    click.echo(f"\r\n{reason}.", err=True)
