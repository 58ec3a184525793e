"""Printing for people (aligned tables, ``key  value`` lines) and for scripts (``-o json``/``-o yaml``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

#: Formats of ``-o/--output``: ``table`` for people, the others for scripts.
FORMATS = ("table", "json", "yaml")

#: The ``-o/--output`` option shared by every command printing data.
output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table for people, json or yaml for scripts",
)


def emit_json(data: Any) -> None:
    """Pretty JSON with stable key order."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def emit_data(data: Any, output: str) -> None:
    """``data`` as YAML when ``output`` is ``yaml``, else as JSON."""
    if output == "yaml":
        click.echo(yaml_text(data))
    else:
        emit_json(data)


def yaml_text(data: Any) -> str:
    """``data`` as a YAML document with sorted keys, block style (yaml is imported on first use)."""
    import yaml

    return str(yaml.safe_dump(data, sort_keys=True, default_flow_style=False)).rstrip("\n")


def cell(value: Any) -> str:
    """One value as text for people: empty for None, compact JSON for lists and objects."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def emit_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """An aligned table: ``columns`` is ``(HEADER, key)`` pairs."""
    cells = [[h for h, _ in columns]] + [[cell(r.get(k)) for _, k in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        click.echo("  ".join(c.ljust(width) for c, width in zip(row, widths, strict=True)).rstrip())


def emit(data: Any, output: str, columns: Sequence[tuple[str, str]]) -> None:
    """A list as a table, JSON or YAML, following ``-o``."""
    if output == "table":
        emit_table(data, columns)
    else:
        emit_data(data, output)


def emit_fields(data: dict[str, Any], output: str) -> None:
    """One object as ``key  value`` lines, JSON or YAML, following ``-o``."""
    if output != "table":
        emit_data(data, output)
        return
    width = max((len(k) for k in data), default=0)
    for key in sorted(data):
        click.echo(f"{key.ljust(width)}  {cell(data[key])}".rstrip())
