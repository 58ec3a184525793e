"""``volar plugins``: runtime manifests (install, list, show, enable, disable, remove)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from volant_core.cli.client import ApiClient
from volant_core.cli.context import pass_client
from volant_core.cli.output import emit, emit_json, output_option

RUNTIME_COLUMNS = [
    ("NAME", "name"),
    ("VERSION", "version"),
    ("RUNTIME", "runtime"),
    ("ENABLED", "enabled"),
    ("SOURCE", "source"),
]


@click.group("plugins")
def plugins() -> None:
    """Runtime manifests: what a VM boots and how kestrel runs its workload.

    \b
    Example:
      volar plugins install examples/hello-http/manifest.json
      volar plugins list
    """


@plugins.command("list")
@output_option
@pass_client
def list_runtimes(client: ApiClient, output: str) -> None:
    """List installed and packaged runtime manifests.

    Example: volar plugins list
    """
    emit(client.json("GET", "/api/v1/plugins")["plugins"], output, RUNTIME_COLUMNS)


@plugins.command("show")
@click.argument("name")
@pass_client
def show_runtime(client: ApiClient, name: str) -> None:
    """Print a runtime's normalized manifest.

    Example: volar plugins show hello-http
    """
    emit_json(client.json("GET", f"/api/v1/plugins/{name}"))


@plugins.command("install")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_client
def install_runtime(client: ApiClient, manifest: Path) -> None:
    """Install a runtime manifest from a JSON file.

    Example: volar plugins install examples/hello-http/manifest.json
    """
    try:
        document = json.loads(manifest.read_text())
    except ValueError as err:
        raise click.BadParameter(f"{manifest} is not valid JSON: {err}", param_hint="MANIFEST") from None
    entry = client.json("POST", "/api/v1/plugins", document)
    click.echo(f"installed {entry['name']} {entry['version']}")


@plugins.command("remove")
@click.argument("name")
@pass_client
def remove_runtime(client: ApiClient, name: str) -> None:
    """Remove an installed runtime manifest (refused while VMs use it).

    Example: volar plugins remove hello-http
    """
    client.call("DELETE", f"/api/v1/plugins/{name}")
    click.echo(f"removed {name}")


def _toggle(enabled: bool) -> click.Command:
    verb = "enable" if enabled else "disable"

    @click.argument("name")
    @pass_client
    def command(client: ApiClient, name: str) -> None:
        client.json("POST", f"/api/v1/plugins/{name}/enabled", {"enabled": enabled})
        click.echo(f"{name} {verb}d")

    command.__doc__ = (
        f"{verb.capitalize()} a runtime for new VMs.\n\nExample: volar plugins {verb} hello-http"
    )
    return click.command(verb)(command)


plugins.add_command(_toggle(True))
plugins.add_command(_toggle(False))
