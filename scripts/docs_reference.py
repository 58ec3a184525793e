"""Render the two generated reference pages of the documentation site.

* ``docs/reference/api.md`` from ``docs/api-reference/openapi.json`` (itself written by
  ``volant-openapi-export``): every operation by tag, with its parameters, body and answers, then
  every schema with its fields;
* ``docs/reference/cli.md`` from the click tree of ``volar`` (``volant_core.cli.volar.cli``): every
  command, group and subcommand with the help text ``--help`` prints.

The pages are generated so that they cannot drift from the code; ``tests/test_docs_site.py`` fails
when either differs from what this script renders now. After changing the API or the CLI::

    .venv/bin/python scripts/docs_reference.py
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parents[1]
OPENAPI = ROOT / "docs" / "api-reference" / "openapi.json"
API_PAGE = ROOT / "docs" / "reference" / "api.md"
CLI_PAGE = ROOT / "docs" / "reference" / "cli.md"
#: The command that writes both pages (named in the pages and in the test that compares them).
REGENERATE = ".venv/bin/python scripts/docs_reference.py"
#: Width of the rendered ``--help`` texts, fixed so that the page does not depend on the terminal.
HELP_WIDTH = 100
HTTP_METHODS = ("get", "put", "post", "patch", "delete", "head", "options")
_REF_PREFIX = "#/components/schemas/"


# ------------------------------------------------------------------------------------------ API


def schema_anchor(name: str) -> str:
    """The anchor of schema ``name``'s section in the API page."""
    return "schema-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def type_of(schema: dict[str, Any]) -> str:
    """A schema's type in a few words of Markdown: ``string``, a link to a named schema,
    ``array of ...``, ``a or b``, ``one of `x`, `y```.
    """
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(_REF_PREFIX)
        return f"[{name}](#{schema_anchor(name)})"
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            joiner = " and " if combinator == "allOf" else " or "
            return joiner.join(type_of(option) for option in schema[combinator])
    if "enum" in schema:
        return "one of " + ", ".join(f"`{json.dumps(value)}`" for value in schema["enum"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {type_of(schema['additionalProperties'])}"
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    return str(kind)


def cell(text: object) -> str:
    """``text`` made safe for one cell of a Markdown table."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """``(tag, METHOD, path, operation)`` of every operation, in the document's order of paths."""
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                operation = item[method]
                yield (operation.get("tags") or ["other"])[0], method.upper(), path, operation


def _body_lines(content: dict[str, Any]) -> list[str]:
    """One line per media type of a request or response body: the type and its schema."""
    return [f"`{media}`: {type_of(entry.get('schema', {}))}" for media, entry in content.items()]


def render_operation(method: str, path: str, operation: dict[str, Any]) -> str:
    """One operation's section: heading, summary, description, parameters, body and answers."""
    parts = [f"### `{method} {path}`"]
    summary = operation.get("summary", "")
    description = operation.get("description", "")
    parts += [summary] if summary else []
    parts += [description] if description and description != summary else []
    parameters = operation.get("parameters", [])
    if parameters:
        rows = ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        rows += [
            f"| `{p['name']}` | {p['in']} | {cell(type_of(p.get('schema', {})))} | "
            f"{'yes' if p.get('required') else 'no'} | {cell(p.get('description', ''))} |"
            for p in parameters
        ]
        parts.append("\n".join(rows))
    body = operation.get("requestBody")
    if body:
        required = " (required)" if body.get("required") else ""
        parts.append(f"**Body**{required}: " + "; ".join(_body_lines(body.get("content", {}))))
    rows = ["| status | meaning | body |", "|---|---|---|"]
    for status, answer in operation.get("responses", {}).items():
        rows.append(
            f"| {status} | {cell(answer.get('description', ''))} | "
            f"{cell('; '.join(_body_lines(answer.get('content', {}))))} |"
        )
    parts.append("\n".join(rows))
    return "\n\n".join(parts)


def render_schema(name: str, schema: dict[str, Any]) -> str:
    """One schema's section: its description and a table of its fields (or its type)."""
    parts = [f"### {name} {{#{schema_anchor(name)}}}"]
    if schema.get("description"):
        parts.append(schema["description"])
    properties = schema.get("properties")
    if not properties:
        parts.append(f"Type: {type_of(schema)}")
        return "\n\n".join(parts)
    required = set(schema.get("required", []))
    rows = ["| field | type | required | default | description |", "|---|---|---|---|---|"]
    for field, definition in properties.items():
        default = f"`{json.dumps(definition['default'])}`" if "default" in definition else ""
        rows.append(
            f"| `{field}` | {cell(type_of(definition))} | {'yes' if field in required else 'no'} | "
            f"{cell(default)} | {cell(definition.get('description', ''))} |"
        )
    parts.append("\n".join(rows))
    return "\n\n".join(parts)


def render_api(spec: dict[str, Any]) -> str:
    """The HTTP API reference page for the OpenAPI document ``spec``."""
    info = spec.get("info", {})
    tags = [tag["name"] for tag in spec.get("tags", [])]
    by_tag: dict[str, list[str]] = {}
    for tag, method, path, operation in _operations(spec):
        if tag not in tags:
            tags.append(tag)
        by_tag.setdefault(tag, []).append(render_operation(method, path, operation))
    servers = ", ".join(f"`{server['url']}`" for server in spec.get("servers", []))
    parts = [
        f"# HTTP API reference ({info.get('title', 'API')} {info.get('version', '')})".replace(" )", ")"),
        f"<!-- Generated from docs/api-reference/openapi.json by `{REGENERATE}`: "
        "edit the API (and re-export openapi.json), not this page. -->",
        info.get("description", ""),
        f"The OpenAPI {spec.get('openapi', '')} document itself is `docs/api-reference/openapi.json`; "
        f"a running volantd serves it at `GET /openapi`. Default server: {servers}. How to send the "
        "API key, and what the 401, 403 and 421 answers mean: "
        "[Securing the API](../user-guide.md#securing-the-api).",
    ]
    for tag in tags:
        if tag in by_tag:
            parts += [f"## {tag}", *by_tag[tag]]
    parts.append("## Schemas")
    parts += [render_schema(name, schema) for name, schema in spec["components"]["schemas"].items()]
    return "\n\n".join(part for part in parts if part) + "\n"


# ------------------------------------------------------------------------------------------ CLI


def commands_of(
    command: click.Command, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """``(path, command)`` of ``command`` and of every command under it, depth first, by name (asked
    through ``list_commands``/``get_command``, so that a group that loads its commands lazily lists
    them too).
    """
    yield path, command
    if isinstance(command, click.Group):
        context = click.Context(command, info_name=path[-1])
        for name in sorted(command.list_commands(context)):
            sub = command.get_command(context, name)
            assert sub is not None, f"{' '.join(path)} lists {name} but has no such command"
            yield from commands_of(sub, (*path, name))


def help_text(path: tuple[str, ...], command: click.Command) -> str:
    """What ``<path> --help`` prints, at :data:`HELP_WIDTH` columns whatever the terminal."""
    context: click.Context | None = None
    for depth in range(1, len(path) + 1):
        context = click.Context(
            command if depth == len(path) else click.Command(path[depth - 1]),
            info_name=path[depth - 1],
            parent=context,
            terminal_width=HELP_WIDTH,
            max_content_width=HELP_WIDTH,
        )
    assert context is not None
    return command.get_help(context)


def render_cli(root: click.Command, name: str = "volar") -> str:
    """The CLI reference page: one section per command, with its ``--help`` text."""
    parts = [
        f"# `{name}` command reference",
        f"<!-- Generated from the click tree of {name} by `{REGENERATE}`: "
        "edit the commands' help, not this page. -->",
        f"Every `{name}` command with what its `--help` prints. Global options (`--api`, "
        f"`--api-key-file`, `--timeout`) come before the command: `{name} --api http://host:7777 vms list`. "
        "Exit codes: [volar](../user-guide.md#exit-codes). Plugins may add commands of their own "
        "(`volant_register_commands`); `volar --help` lists those installed.",
    ]
    for path, command in commands_of(root, (name,)):
        level = "#" * min(len(path) + 1, 4)
        parts.append(f"{level} `{' '.join(path)}`")
        parts.append(f"```text\n{help_text(path, command).rstrip()}\n```")
    return "\n\n".join(parts) + "\n"


def volar_cli() -> click.Command:
    """The ``volar`` click group of the core (without commands plugins register at run time)."""
    from volant_core.cli.volar import cli

    return cli


def rendered_pages() -> dict[Path, str]:
    """Each generated page and what it should hold now."""
    return {
        API_PAGE: render_api(json.loads(OPENAPI.read_text())),
        CLI_PAGE: render_cli(volar_cli()),
    }


def main() -> None:
    """Write both pages (``--check``: write nothing, exit 1 naming the pages that are out of date)."""
    check = sys.argv[1:] == ["--check"]
    stale = []
    for page, text in rendered_pages().items():
        if page.exists() and page.read_text() == text:
            continue
        stale.append(page.relative_to(ROOT).as_posix())
        if not check:
            page.write_text(text)
    if check and stale:
        sys.exit(f"out of date: {', '.join(stale)}; regenerate with {REGENERATE}")


if __name__ == "__main__":
    main()
