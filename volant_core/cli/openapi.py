"""``volar openapi export`` and ``volant-openapi-export``: write the API's OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import click

from volant_core.api.openapi import DEFAULT_OUTPUT


@click.group("openapi")
def openapi() -> None:
    """The OpenAPI 3.1 document of the volantd API.

    Example: volar openapi export
    """


@openapi.command("export")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_OUTPUT,
    show_default=True,
    help="file to write (relative to the current directory)",
)
def export(output: Path) -> None:
    """Generate the document from the routes of a throwaway volantd (core only, nothing installed
    leaks in) and write it with sorted keys, so it can be committed and compared.

    Runs on this host, not through the API. Example: volar openapi export -o /tmp/openapi.json
    """
    from volant_core.api.openapi.export import export as write_document  # the whole daemon: on use

    click.echo(f"wrote {write_document(output)}")
