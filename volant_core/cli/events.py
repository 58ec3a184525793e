"""``volar events``: follow volantd's event stream (SSE), resuming after dropped connections."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import click

from volant_core.cli.client import ApiClient, Unreachable
from volant_core.cli.context import pass_client
from volant_core.cli.output import cell, output_option, yaml_text

#: Seconds before reconnecting, until the server's ``retry:`` says otherwise.
DEFAULT_RETRY = 1.0


@dataclass
class Frame:
    """One SSE message: its ``id:`` (None for control events such as GAP), ``event:`` and ``data:``."""

    event: str = "message"
    id: int | None = None
    data: list[str] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        """The ``data:`` lines parsed as the JSON object they carry."""
        parsed = json.loads("\n".join(self.data))
        return parsed if isinstance(parsed, dict) else {"data": parsed}


@dataclass
class Resume:
    """Where the stream continues after a reconnect: the last event id seen and the server's delay."""

    last_id: int | None
    retry: float = DEFAULT_RETRY


def frames(lines: Iterable[bytes], resume: Resume) -> Iterator[Frame]:
    """The messages of an SSE body; comments (heartbeats) skipped, ``retry:`` and ``id:`` noted in
    ``resume``.
    """
    current = Frame()
    for raw in lines:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if current.data:
                yield current
            current = Frame()
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            current.event = value
        elif key == "data":
            current.data.append(value)
        elif key == "id" and value.isdigit():
            current.id = resume.last_id = int(value)
        elif key == "retry" and value.isdigit():
            resume.retry = int(value) / 1000


def print_event(frame: Frame, output: str) -> None:
    """One event: ``<id> <type> <name> <status> <message>``, a JSON line, or a YAML document."""
    data = frame.payload()
    if output == "json":
        click.echo(json.dumps({"type": frame.event, **data}, sort_keys=True))
    elif output == "yaml":
        click.echo("---\n" + yaml_text({"type": frame.event, **data}))
    else:
        fields = ["-" if frame.id is None else frame.id, frame.event, data.get("name"), data.get("status")]
        click.echo(" ".join(cell(v) or "-" for v in fields) + f" {cell(data.get('message'))}".rstrip())


@click.command("events")
@click.option("--since", type=click.IntRange(0), help="replay the stored events after this id first")
@click.option("--type", "types", multiple=True, help="only events of this type (repeatable), e.g. VM_RUNNING")
@click.option("--name", help="only events of this VM or deployment")
@output_option
@pass_client
def events(
    client: ApiClient, since: int | None, types: tuple[str, ...], name: str | None, output: str
) -> None:
    """Follow the event stream until Ctrl-C, one line per event; reconnects where it left off.

    Silence longer than --timeout (the server sends heartbeats) counts as a dropped connection.

    Example: volar events --type VM_RUNNING --type VM_CRASHED -o json
    """
    query = [("type", t) for t in types] + ([("name", name)] if name else [])
    path = "/api/v1/events/vms" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    resume = Resume(since)
    connected_once = False
    try:
        while True:
            headers = {} if resume.last_id is None else {"Last-Event-ID": str(resume.last_id)}
            try:
                with client.stream(path, headers=headers, timeout=client.timeout) as body:
                    connected_once = True
                    for frame in frames(body, resume):
                        print_event(frame, output)
            except Unreachable:
                if not connected_once:
                    raise
            except (OSError, http.client.HTTPException):  # reset, cut or silent too long: reconnect
                pass
            click.echo(f"connection lost; reconnecting in {resume.retry:g}s", err=True)
            time.sleep(resume.retry)
    except KeyboardInterrupt:
        return
