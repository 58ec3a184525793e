"""``volar deployments``: replicated VMs kept running by the reconcile loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from volant_core.cli.client import ApiClient
from volant_core.cli.context import pass_client
from volant_core.cli.output import emit, emit_fields, output_option

DEPLOYMENT_COLUMNS = [("NAME", "name"), ("DESIRED", "replicas"), ("READY", "ready_replicas")]

config_file = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON file with the member VM configuration (the keys of `vms config set`, incl. plugin)",
)


def read_config(path: Path | None, plugin: str | None) -> dict[str, Any] | None:
    """The member configuration from ``--config`` and/or ``--plugin`` (None when neither is given)."""
    if path is None and plugin is None:
        return None
    try:
        config: dict[str, Any] = json.loads(path.read_text()) if path else {}
    except ValueError as err:
        raise click.BadParameter(f"{path} is not valid JSON: {err}", param_hint="--config") from None
    if plugin:
        config["plugin"] = plugin
    return config


@click.group("deployments")
def deployments() -> None:
    """Run N replicas of a VM configuration; crashed members are replaced automatically.

    \b
    Example:
      volar deployments create web --plugin hello-http --replicas 3
      volar deployments scale web 5
    """


@deployments.command("list")
@output_option
@pass_client
def list_deployments(client: ApiClient, output: str) -> None:
    """List deployments with desired and ready replicas.

    Example: volar deployments list
    """
    emit(client.json("GET", "/api/v1/deployments"), output, DEPLOYMENT_COLUMNS)


@deployments.command("get")
@click.argument("name")
@output_option
@pass_client
def get_deployment(client: ApiClient, name: str, output: str) -> None:
    """Show a deployment and its members.

    Example: volar deployments get web -o json
    """
    emit_fields(client.json("GET", f"/api/v1/deployments/{name}"), output)


@deployments.command("create")
@click.argument("name")
@click.option("--plugin", help="runtime manifest of the members (or `plugin` in --config)")
@config_file
@click.option("--replicas", type=click.IntRange(0), default=1, show_default=True)
@output_option
@pass_client
def create_deployment(
    client: ApiClient, name: str, plugin: str | None, config_path: Path | None, replicas: int, output: str
) -> None:
    """Create a deployment; members <name>-1 .. <name>-N are created right after.

    Example: volar deployments create web --plugin hello-http --replicas 3
    """
    config = read_config(config_path, plugin)
    if config is None:
        raise click.UsageError("give --plugin or --config (naming the plugin)")
    body = {"name": name, "replicas": replicas, "config": config}
    emit_fields(client.json("POST", "/api/v1/deployments", body), output)


@deployments.command("scale")
@click.argument("name")
@click.argument("replicas", type=click.IntRange(0))
@pass_client
def scale_deployment(client: ApiClient, name: str, replicas: int) -> None:
    """Set the number of replicas (surplus members go highest index first).

    Example: volar deployments scale web 1
    """
    result = client.json("PATCH", f"/api/v1/deployments/{name}", {"replicas": replicas})
    click.echo(f"{name}: {result['replicas']} desired, {result['ready_replicas']} ready")


@deployments.command("update")
@click.argument("name")
@click.option("--plugin", help="runtime manifest of the members")
@config_file
@pass_client
def update_deployment(client: ApiClient, name: str, plugin: str | None, config_path: Path | None) -> None:
    """Roll a new member configuration out, one member at a time.

    Example: volar deployments update web --config web.json
    """
    config = read_config(config_path, plugin)
    if config is None:
        raise click.UsageError("give --config and/or --plugin")
    client.json("PATCH", f"/api/v1/deployments/{name}", {"config": config})
    click.echo(f"{name}: rolling out the new configuration")


@deployments.command("delete")
@click.argument("name")
@pass_client
def delete_deployment(client: ApiClient, name: str) -> None:
    """Delete every member, then the deployment.

    Example: volar deployments delete web
    """
    client.call("DELETE", f"/api/v1/deployments/{name}")
    click.echo(f"deployment {name} deleted")
