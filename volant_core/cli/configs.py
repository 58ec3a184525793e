"""``volar vms config``: a VM's versioned configuration."""

from __future__ import annotations

import json
from pathlib import Path

import click

from volant_core.cli.client import ApiClient
from volant_core.cli.context import pass_client
from volant_core.cli.output import emit, emit_json, output_option
from volant_core.cli.seeddocs import inline_documents

HISTORY_COLUMNS = [("VERSION", "version"), ("UPDATED", "updated_at")]


@click.group("config")
def config() -> None:
    """Read, change and roll back a VM's configuration (changes apply at the next start).

    \b
    Example:
      volar vms config set web-1 --file patch.json
      volar vms config rollback web-1 1
    """


@config.command("get")
@click.argument("name")
@pass_client
def get_config(client: ApiClient, name: str) -> None:
    """Print the current configuration with its version.

    Example: volar vms config get web-1
    """
    emit_json(client.json("GET", f"/api/v1/vms/{name}/config"))


@config.command("set")
@click.argument("name")
@click.option(
    "--file",
    "patch_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="JSON patch: keys present replace, null resets, [] clears a list",
)
@pass_client
def set_config(client: ApiClient, name: str, patch_file: Path) -> None:
    """Apply a JSON patch; prints the new version and whether a restart is pending.

    Example: volar vms config set web-1 --file patch.json
    """
    try:
        patch = json.loads(patch_file.read_text())
    except ValueError as err:
        raise click.BadParameter(f"{patch_file} is not valid JSON: {err}", param_hint="--file") from None
    if isinstance(patch, dict) and "cloud_init" in patch:
        patch["cloud_init"] = inline_documents(patch["cloud_init"], "--file")
    result = client.json("PATCH", f"/api/v1/vms/{name}/config", patch)
    click.echo(f"{name}: configuration version {result['version']}{pending_note(client, name)}")


def pending_note(client: ApiClient, name: str) -> str:
    """`` (restart the VM to apply it)`` when the VM runs an older configuration, else ``""``."""
    vm = client.json("GET", f"/api/v1/vms/{name}")
    return " (restart the VM to apply it)" if vm.get("restart_pending") else ""


@config.command("history")
@click.argument("name")
@click.option("--limit", type=click.IntRange(0), default=0, help="newest N versions (0: all)")
@output_option
@pass_client
def config_history(client: ApiClient, name: str, limit: int, output: str) -> None:
    """List configuration versions, newest first.

    Example: volar vms config history web-1 --limit 5
    """
    emit(client.json("GET", f"/api/v1/vms/{name}/config/history?limit={limit}"), output, HISTORY_COLUMNS)


@config.command("rollback")
@click.argument("name")
@click.argument("version", type=click.IntRange(1))
@pass_client
def rollback_config(client: ApiClient, name: str, version: int) -> None:
    """Make an earlier version current again (stored as a new version).

    Example: volar vms config rollback web-1 2
    """
    result = client.json("POST", f"/api/v1/vms/{name}/config/rollback", {"version": version})
    click.echo(f"{name}: configuration version {result['version']} (copy of version {version})")
