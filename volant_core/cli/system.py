"""``volar system``: what the daemon runs with and how it is doing."""

from __future__ import annotations

import click

from volant_core.cli.client import ApiClient
from volant_core.cli.context import pass_client
from volant_core.cli.output import emit, emit_data, emit_fields, output_option

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


def _report(view: str, help_text: str) -> click.Command:
    """``volar system <view>``: ``GET /api/v1/system/<view>`` as ``key  value`` lines, JSON or YAML."""

    @output_option
    @pass_client
    def command(client: ApiClient, output: str) -> None:
        data = client.json("GET", f"/api/v1/system/{view}")
        if isinstance(data, dict):
            emit_fields(data, output)
        else:
            emit_data(data, "yaml" if output == "table" else output)

    command.__doc__ = f"{help_text}\n\nExample: volar system {view} -o json"
    return click.command(view)(command)


for _view, _help in (
    ("info", "Daemon version, settings in effect and host facts."),
    ("summary", "Counts of VMs by status, deployments and plugins."),
    ("status", "Whether the daemon and its dependencies are healthy."),
):
    system.add_command(_report(_view, _help))
