"""``volar image``: the guest image (kernel + initramfs) every VM boots by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from volant_core.cli.client import ApiClient
from volant_core.cli.context import pass_client
from volant_core.cli.output import emit_data, emit_table, output_option
from volant_core.cli.progress import human_size, task_bars


@click.group("image")
def image() -> None:
    """Build the guest image; list and prune the boot media volantd downloaded.

    Example: volar image build
    """


@image.command("build")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="where to build (default: the daemon's cache, <state>/cache/guest)",
)
def build(cache_dir: Path | None) -> None:
    """Build (or reuse) the kernel and initramfs from Debian packages and kestrel.

    Runs on this host, not through the API; volantd finds the result in its cache. On a terminal,
    downloads, unpacking and the initramfs writing show progress bars.

    Example: volar image build
    """
    from volant_core.guest import ensure_guest  # the image builder and the settings: on use
    from volant_core.settings import load_settings

    target = cache_dir or load_settings().cache_dir / "guest"
    with task_bars() as bars:
        artifacts = ensure_guest(target, log=lambda line: click.echo(f"  {line}", err=True), progress=bars)
    click.echo(f"kernel     {artifacts.kernel}")
    click.echo(f"initramfs  {artifacts.initramfs}")


#: Columns of ``volar image cache ls``.
CACHE_COLUMNS = [
    ("KIND", "kind"),
    ("DIGEST", "digest"),
    ("SIZE", "size"),
    ("USED BY", "used_by"),
    ("URL", "url"),
]


@image.group("cache")
def cache() -> None:
    """The download cache of volantd (boot media fetched by URL), through the API.

    Example: volar image cache ls
    """


@cache.command("ls")
@output_option
@pass_client
def cache_ls(client: ApiClient, output: str) -> None:
    """List cached artifacts and resumable downloads, their sizes and the VMs that use them.

    Example: volar image cache ls -o json
    """
    listing = client.json("GET", "/api/v1/images/cache")
    if output != "table":
        emit_data(listing, output)
        return
    emit_table([_readable(entry) for entry in listing["entries"]], CACHE_COLUMNS)
    click.echo(f"total: {human_size(listing['total_bytes'])}")


@cache.command("prune")
@output_option
@pass_client
def cache_prune(client: ApiClient, output: str) -> None:
    """Remove what no VM's configuration names (what a VM uses, or is being fetched, stays).

    Example: volar image cache prune
    """
    pruned = client.json("POST", "/api/v1/images/cache/prune")
    if output != "table":
        emit_data(pruned, output)
        return
    for entry in pruned["removed"]:
        click.echo(f"removed {entry['kind']} {entry['digest']} ({human_size(entry['size'])})")
    click.echo(f"freed: {human_size(pruned['freed_bytes'])}")


def _readable(entry: dict[str, Any]) -> dict[str, Any]:
    """A cache entry for the table: sizes for people, the users as a list."""
    return {**entry, "size": human_size(entry["size"]), "used_by": ",".join(entry["used_by"]) or "-"}
