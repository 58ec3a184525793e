"""Printing for people (aligned tables) and for scripts (``-o json``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

#: The ``-o/--output`` option shared by listing commands.
output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json for scripts",
)


def emit_json(data: Any) -> None:
    """Pretty JSON with stable key order."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def emit_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """An aligned table: ``columns`` is ``(HEADER, key)`` pairs."""
    cells = [[h for h, _ in columns]] + [
        ["" if r.get(k) is None else str(r.get(k)) for _, k in columns] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def emit(data: Any, output: str, columns: Sequence[tuple[str, str]]) -> None:
    """A list as a table or JSON, following ``-o``."""
    if output == "json":
        emit_json(data)
    else:
        emit_table(data, columns)


def emit_fields(data: dict[str, Any], output: str) -> None:
    """One object as ``key: value`` lines or JSON."""
    if output == "json":
        emit_json(data)
        return
    width = max(len(k) for k in data)
    for key in sorted(data):
        click.echo(f"{key.ljust(width)}  {'' if data[key] is None else data[key]}")
