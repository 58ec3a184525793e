"""``volar vms console``: a VM's serial console in this terminal, through the API's WebSocket
(the session itself is :mod:`volant_core.cli.console_session`, imported when attaching).
"""

from __future__ import annotations

import sys

import click

from volant_core.cli.client import ApiClient, ApiError
from volant_core.cli.context import pass_client


@click.command("console")
@click.argument("name")
@pass_client
def console(client: ApiClient, name: str) -> None:
    """Attach to a VM's serial console; Ctrl-] detaches.

    Keys go to the guest as typed (the terminal is in raw mode, so Ctrl-C
    reaches the guest). Works against a remote volantd, with --api-key.

    Example: volar vms console web-1
    """
    from volant_core.cli import console_session as session  # websockets: only to attach

    websocket = session.open_console(client, name)
    with websocket, session.raw_terminal(sys.stdin.fileno()):
        click.echo(f"Connected to the console of {name}; press {session.ESCAPE_KEYS} to detach.\r", err=True)
        detached = session.pump(websocket, sys.stdin.fileno(), sys.stdout.fileno())
    if detached:
        click.echo(f"\r\nDetached from the console of {name}.", err=True)
        return
    reason = websocket.close_reason or "connection closed"
    if websocket.close_code not in session.NORMAL_CLOSE_CODES:
        raise ApiError(f"the console of {name} ended: {reason} (code {websocket.close_code})", 1)
    click.echo(f"\r\n{reason}.", err=True)
