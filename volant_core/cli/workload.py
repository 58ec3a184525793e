"""``volar vms operations`` and ``volar vms call``: the workload's API, as its OpenAPI document describes it.

Requests travel through volantd's agent proxy, ``/api/v1/vms/NAME/agent/v1<path>``: kestrel hands
``/v1/<path>`` to the workload as ``/<path>`` (the Go CLI forgot the ``/v1`` prefix).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import click

from volant_core.cli.client import ApiClient
from volant_core.cli.context import pass_client
from volant_core.cli.output import emit, output_option

#: The HTTP methods an OpenAPI path item may describe.
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
#: A ``{name}`` placeholder in an OpenAPI path.
PLACEHOLDER = re.compile(r"\{([^{}/]+)\}")

OPERATION_COLUMNS = [
    ("OPERATION ID", "operation_id"),
    ("METHOD", "method"),
    ("PATH", "path"),
    ("SUMMARY", "summary"),
]


@dataclass(frozen=True)
class Operation:
    """One operation of the workload's OpenAPI document."""

    operation_id: str
    method: str
    path: str
    summary: str
    content_types: tuple[str, ...]

    def row(self) -> dict[str, str]:
        """The table/JSON row of ``volar vms operations``."""
        return {
            "operation_id": self.operation_id,
            "method": self.method,
            "path": self.path,
            "summary": self.summary,
        }


def workload_operations(client: ApiClient, name: str) -> list[Operation]:
    """The operations of VM ``name``'s workload, sorted by operation id, path and method."""
    document = client.json("GET", f"/api/v1/vms/{name}/openapi")
    paths = document.get("paths") if isinstance(document, dict) else None
    if not isinstance(paths, dict):
        raise click.ClickException(f"the OpenAPI document of {name}'s workload has no paths")
    found = []
    for path, item in paths.items():
        for method in HTTP_METHODS:
            spec = item.get(method) if isinstance(item, dict) else None
            if not isinstance(spec, dict):
                continue
            content = (spec.get("requestBody") or {}).get("content") or {}
            found.append(
                Operation(
                    operation_id=str(spec.get("operationId") or ""),
                    method=method.upper(),
                    path=path,
                    summary=str(spec.get("summary") or ""),
                    content_types=tuple(content),
                )
            )
    return sorted(found, key=lambda op: (op.operation_id, op.path, op.method))


def find_operation(operations: list[Operation], wanted: str) -> Operation:
    """The operation named by its operation id (case-insensitive) or as ``METHOD:PATH``."""
    for op in operations:
        if op.operation_id and op.operation_id.lower() == wanted.lower():
            return op
    method, sep, path = wanted.partition(":")
    for op in operations:
        if sep and op.method == method.upper() and op.path == path:
            return op
    known = ", ".join(op.operation_id or f"{op.method}:{op.path}" for op in operations) or "none"
    raise click.BadParameter(f"no operation {wanted} in the workload's OpenAPI (known: {known})")


def pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    """``k=v`` option values as a dict."""
    result = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=option)
        result[key] = item
    return result


def fill_path(path: str, params: dict[str, str]) -> str:
    """``path`` with each ``{name}`` replaced by its URL-quoted ``--param`` value."""
    needed = PLACEHOLDER.findall(path)
    if missing := [n for n in needed if n not in params]:
        raise click.BadParameter(f"{path} needs {', '.join(missing)}", param_hint="--param")
    if unknown := sorted(set(params) - set(needed)):
        raise click.BadParameter(f"{path} has no {{{'}, {'.join(unknown)}}}", param_hint="--param")
    return PLACEHOLDER.sub(lambda m: urllib.parse.quote(params[m.group(1)], safe=""), path)


def content_type(op: Operation) -> str:
    """The request's content type: JSON unless the operation accepts only something else."""
    if not op.content_types or any("json" in kind for kind in op.content_types):
        return "application/json"
    return op.content_types[0]


def print_reply(status: int, headers: dict[str, str], body: bytes) -> None:
    """``HTTP <status>``, then the body: pretty JSON when it is JSON, else as received."""
    click.echo(f"HTTP {status}")
    kind = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if "json" in kind:
        try:
            click.echo(json.dumps(json.loads(body), indent=2, sort_keys=True))
            return
        except ValueError:
            pass
    if body:
        click.echo(body.decode(errors="replace"))


@click.command("operations")
@click.argument("name")
@output_option
@pass_client
def operations(client: ApiClient, name: str, output: str) -> None:
    """List the operations the VM's workload declares in its OpenAPI document.

    Example: volar vms operations web-1
    """
    emit([op.row() for op in workload_operations(client, name)], output, OPERATION_COLUMNS)


@click.command("call")
@click.argument("name")
@click.argument("operation")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="fills {KEY} in the path")
@click.option("--query", "queries", multiple=True, metavar="KEY=VALUE", help="query string parameter")
@click.option("--body", help="request body (JSON for JSON operations)")
@click.option(
    "--body-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="file holding the body"
)
@pass_client
def call(
    client: ApiClient,
    name: str,
    operation: str,
    params: tuple[str, ...],
    queries: tuple[str, ...],
    body: str | None,
    body_file: Path | None,
) -> None:
    """Call one operation of the VM's workload (OPERATION: an operation id or METHOD:PATH).

    Prints ``HTTP <status>`` and the body; exits 1 when the workload answers 4xx or 5xx.

    Example: volar vms call web-1 echo --body '{"hi": 1}'
    """
    if body is not None and body_file is not None:
        raise click.UsageError("give --body or --body-file, not both")
    op = find_operation(workload_operations(client, name), operation)
    path = fill_path(op.path, pairs(params, "--param"))
    query = pairs(queries, "--query")
    url = f"/api/v1/vms/{name}/agent/v1{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    raw = body_file.read_bytes() if body_file else body.encode() if body is not None else None
    headers = {"Content-Type": content_type(op)} if raw is not None else {}
    reply = client.send(op.method, url, raw=raw, headers=headers)
    print_reply(reply.status, reply.headers, reply.body)
    if reply.status >= 400:
        raise SystemExit(1)
