"""``volar``: the command-line client of volantd."""

from __future__ import annotations

from pathlib import Path

import click

from volant_core import __version__
from volant_core.cli.client import ApiClient
from volant_core.cli.completion import completion
from volant_core.cli.deployments import deployments
from volant_core.cli.doctor import doctor
from volant_core.cli.events import events
from volant_core.cli.image import image
from volant_core.cli.openapi import openapi
from volant_core.cli.runtimes import plugins
from volant_core.cli.setup import setup
from volant_core.cli.system import system
from volant_core.cli.vms import vms
from volant_core.plugins import load_plugins
from volant_core.settings import read_key_file


@click.group()
@click.version_option(__version__, prog_name="volar")
@click.option(
    "--api",
    envvar=["VOLANT_API", "VOLANT_API_BASE"],
    default="http://127.0.0.1:7777",
    show_default=True,
    help="volantd URL (env VOLANT_API)",
)
@click.option(
    "--api-key",
    envvar="VOLANT_API_KEY",
    help="API key sent on every request (env VOLANT_API_KEY); on the command line every user sees it "
    "in ps: prefer --api-key-file",
)
@click.option(
    "--api-key-file",
    envvar="VOLANT_API_KEY_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="file holding the API key (env VOLANT_API_KEY_FILE)",
)
@click.option("--timeout", type=float, default=60.0, show_default=True, help="seconds per API request")
@click.pass_context
def cli(ctx: click.Context, api: str, api_key: str | None, api_key_file: Path | None, timeout: float) -> None:
    """Drive Volant microVMs.

    \b
    Example:
      volar plugins install examples/hello-http/manifest.json
      volar vms create demo --plugin hello-http
      volar vms agent demo /v1/
    """
    if api_key_file is not None:
        if api_key is not None:
            raise click.UsageError("give --api-key or --api-key-file, not both (mind VOLANT_API_KEY)")
        try:
            api_key = read_key_file(api_key_file.expanduser())
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--api-key-file") from None
    ctx.obj = ApiClient(api, api_key=api_key, timeout=timeout)


for _group in (vms, deployments, plugins, system, events, image, doctor, setup, openapi, completion):
    cli.add_command(_group)


def main() -> None:
    """Entry point of the ``volar`` console script (plugins may add commands).

    A plugin whose ``volant_register_commands`` raises is reported on stderr and skipped.
    """
    plugins = load_plugins()
    hook = "volant_register_commands"
    for owner, impl in plugins.calls.implementations(hook):
        try:
            plugins.calls.call_one(hook, owner, impl, {"cli": cli})
        except Exception as err:  # a broken plugin must not take volar down
            distribution = plugins.info[owner].distribution
            click.echo(
                f"warning: plugin {owner} ({distribution}): {hook} raised {type(err).__name__}: {err}",
                err=True,
            )
    cli()
