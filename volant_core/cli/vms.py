"""``volar vms``: create, inspect, start, stop and delete VMs."""

from __future__ import annotations

import time

import click

from volant_core.cli.client import ApiClient, ApiError
from volant_core.cli.configs import config
from volant_core.cli.context import pass_client
from volant_core.cli.output import emit, emit_fields, output_option

VM_COLUMNS = [
    ("NAME", "name"),
    ("STATUS", "status"),
    ("RUNTIME", "runtime"),
    ("HYPERVISOR", "hypervisor"),
    ("ACCEL", "accelerator"),
    ("PID", "pid"),
    ("IP", "ip_address"),
    ("CPU", "cpu_cores"),
    ("MEM", "memory_mb"),
]


@click.group("vms")
def vms() -> None:
    """Create and manage microVMs.

    \b
    Example:
      volar vms create web-1 --plugin hello-http
      volar vms list
    """


@vms.command("list")
@output_option
@pass_client
def list_vms(client: ApiClient, output: str) -> None:
    """List VMs.

    Example: volar vms list -o json
    """
    emit(client.json("GET", "/api/v1/vms"), output, VM_COLUMNS)


@vms.command("get")
@click.argument("name")
@output_option
@pass_client
def get_vm(client: ApiClient, name: str, output: str) -> None:
    """Show one VM.

    Example: volar vms get web-1
    """
    emit_fields(client.json("GET", f"/api/v1/vms/{name}"), output)


def wait_until_settled(client: ApiClient, name: str, timeout: float) -> dict:
    """Poll a VM until it leaves ``pending``/``starting``; fail unless it is ``running``."""
    deadline = time.monotonic() + timeout
    while True:
        vm = client.json("GET", f"/api/v1/vms/{name}")
        if vm["status"] == "running":
            return vm
        if vm["status"] not in ("pending", "starting"):
            raise ApiError(f"vm {name} is {vm['status']}: {vm.get('status_reason') or 'no reason given'}", 1)
        if time.monotonic() > deadline:
            raise ApiError(f"vm {name} still {vm['status']} after {timeout:.0f}s", 1)
        time.sleep(0.5)


@vms.command("create")
@click.argument("name")
@click.option("--plugin", required=True, help="runtime manifest (plugin) to boot")
@click.option("--runtime", help="runtime; must match the plugin's")
@click.option("--cpu", "cpu_cores", type=click.IntRange(1, 64), help="vCPUs (default: the manifest's)")
@click.option(
    "--memory", "memory_mb", type=click.IntRange(128), help="memory in MiB (default: the manifest's)"
)
@click.option("--kernel-cmdline", help="extra kernel arguments")
@click.option("--hypervisor", help="hypervisor plugin (default: the daemon's)")
@click.option("--network", "network_mode", help="network mode (default: the manifest's or the daemon's)")
@click.option("--wait/--no-wait", default=True, show_default=True, help="wait until the VM is running")
@click.option("--wait-timeout", type=float, default=180.0, show_default=True, help="seconds to wait")
@output_option
@pass_client
def create_vm(
    client: ApiClient, name: str, wait: bool, wait_timeout: float, output: str, **fields: object
) -> None:
    """Create a VM and boot it.

    Example: volar vms create web-1 --plugin hello-http --memory 512
    """
    payload = {"name": name, **{k: v for k, v in fields.items() if v is not None}}
    vm = client.json("POST", "/api/v1/vms", payload)
    if wait:
        vm = wait_until_settled(client, name, wait_timeout)
    emit_fields(vm, output)


def _action(verb: str, help_text: str) -> click.Command:
    @click.argument("name")
    @output_option
    @pass_client
    def command(client: ApiClient, name: str, output: str) -> None:
        emit_fields(client.json("POST", f"/api/v1/vms/{name}/{verb}"), output)

    command.__doc__ = f"{help_text}\n\nExample: volar vms {verb} web-1"
    return click.command(verb)(command)


for _verb, _help in (
    ("start", "Boot a stopped or crashed VM."),
    ("stop", "Power a VM off."),
    ("restart", "Stop, then start a VM."),
):
    vms.add_command(_action(_verb, _help))


@vms.command("delete")
@click.argument("name")
@pass_client
def delete_vm(client: ApiClient, name: str) -> None:
    """Delete a VM (stopping it first) and everything it held on the host.

    Example: volar vms delete web-1
    """
    client.call("DELETE", f"/api/v1/vms/{name}")
    click.echo(f"vm {name} deleted")


@vms.command("agent")
@click.argument("name")
@click.argument("path", default="/v1/health")
@click.option("-X", "--method", default="GET", show_default=True, help="HTTP method")
@click.option("-d", "--data", help="request body")
@pass_client
def agent_request(client: ApiClient, name: str, path: str, method: str, data: str | None) -> None:
    """Send one request to the VM's guest agent (paths under /v1 reach the workload).

    Example: volar vms agent web-1 /v1/   (the workload's answer to GET /)
    """
    reply = client.call(
        method.upper(),
        f"/api/v1/vms/{name}/agent/{path.lstrip('/')}",
        raw=data.encode() if data is not None else None,
    )
    click.echo(reply.body.decode(errors="replace"))


vms.add_command(config)
