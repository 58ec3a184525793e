"""``volar quickstart``: from installed packages to a VM that answers, in one command."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
from importlib import resources
from pathlib import Path

import click

from volant_core.cli.client import ApiClient, ApiError
from volant_core.cli.context import pass_client

#: The example runtime shipped inside volant-core (``examples/hello-http`` in the repository).
EXAMPLE_RUNTIME = "hello-http.json"
#: Seconds a volantd started here may take to answer.
START_TIMEOUT = 30.0


@click.command("quickstart")
@click.option("--name", default="demo", show_default=True, help="the VM to boot")
@click.option(
    "--wait-timeout",
    type=float,
    default=900.0,
    show_default=True,
    help="seconds the VM may take to run (the first boot builds the guest image)",
)
@pass_client
def quickstart(client: ApiClient, name: str, wait_timeout: float) -> None:
    """Start volantd (unless one answers at --api), install the example runtime hello-http, boot
    the VM NAME with it and print the workload's answer, fetched through volantd and kestrel.

    A volantd started here listens where --api points, keeps its state where VOLANT_STATE_DIR
    says (default ~/.volant, /var/lib/volant for root), logs to <log dir>/volantd.log and records
    its pid in <state dir>/volantd.pid; it keeps running afterwards. Each step is skipped when done
    before, so running the command again is harmless.

    Example: volar quickstart
    """
    if not _answers(client):
        _start_volantd(client)
    runtime = json.loads(resources.files("volant_core.examples").joinpath(EXAMPLE_RUNTIME).read_text())
    installed = client.send("POST", "/api/v1/plugins", runtime)
    if installed.status not in (201, 409):  # 409: installed before
        raise client.error_for(installed.status, installed.body)
    existing = client.send("GET", f"/api/v1/vms/{name}")
    if existing.status == 404:
        click.echo(f"==> booting VM {name} (runtime {runtime['name']})", err=True)
        vm = client.json("POST", "/api/v1/vms", {"name": name, "plugin": runtime["name"]})
    else:
        vm = client.json("GET", f"/api/v1/vms/{name}")
    from volant_core.cli.vms import booted

    booted(client, vm, wait=True, wait_timeout=wait_timeout)
    answer = client.call("GET", f"/api/v1/vms/{name}/agent/v1/")
    click.echo(answer.body.decode())
    click.echo(f"next: volar vms list | volar vms console {name} | volar vms delete {name}", err=True)


def _answers(client: ApiClient) -> bool:
    try:
        return client.send("GET", "/healthz").status == 200
    except ApiError:
        return False


def _start_volantd(client: ApiClient) -> None:
    """Start volantd in a session of its own, listening where ``client`` points; wait until it answers."""
    from volant_core.launch import log_tail
    from volant_core.settings import load_settings

    address = urllib.parse.urlsplit(client.base_url)
    if address.scheme != "http" or address.hostname is None:
        raise click.UsageError(
            f"--api {client.base_url}: quickstart starts volantd on an http:// address only"
        )
    listen = f"{address.hostname}:{address.port or 80}"
    settings = load_settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    log = settings.log_dir / "volantd.log"
    click.echo(f"==> starting volantd on {listen} (log: {log})", err=True)
    with log.open("ab") as output:
        start = output.tell()
        daemon = subprocess.Popen(
            [str(Path(sys.executable).with_name("volantd")), "--listen", listen],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (settings.state_dir / "volantd.pid").write_text(f"{daemon.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(client):
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise ApiError(f"volantd did not start: {log_tail(log, start)}", 1)
        time.sleep(0.2)
