"""A plugin adding the command ``volar hello`` through ``volant_register_commands``.

The command receives the API client of the invocation like the core's commands, so the global
options (``--api``, ``--api-key``, ``--timeout``) reach it.
"""

import click

from volant_core import hookimpl
from volant_core.cli.client import ApiClient
from volant_core.cli.context import pass_client


@click.command("hello")
@click.argument("name", default="world")
@pass_client
def hello(client: ApiClient, name: str) -> None:
    """Greet NAME and name the volantd this volar talks to.

    Example: volar hello Ada
    """
    click.echo(f"hello {name}, from a plugin command (volantd at {client.base_url})")


@hookimpl
def volant_register_commands(cli: click.Group) -> None:
    """Add ``volar hello``."""
    cli.add_command(hello)
