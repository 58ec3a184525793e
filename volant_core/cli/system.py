"""``volar system``: what the daemon runs with."""

from __future__ import annotations

import click

from volant_core.cli.client import ApiClient
from volant_core.cli.context import pass_client
from volant_core.cli.output import emit, output_option

PLUGIN_COLUMNS = [
    ("NAME", "name"),
    ("STATUS", "status"),
    ("DISTRIBUTION", "distribution"),
    ("VERSION", "version"),
    ("ERROR", "error"),
]


@click.group("system")
def system() -> None:
    """Daemon information.

    Example: volar system plugins
    """


@system.command("plugins")
@output_option
@pass_client
def system_plugins(client: ApiClient, output: str) -> None:
    """Code plugins the daemon loaded (hypervisors, network modes ...), broken ones with their error.

    Example: volar system plugins -o json
    """
    emit(client.json("GET", "/api/v1/system/plugins")["plugins"], output, PLUGIN_COLUMNS)
