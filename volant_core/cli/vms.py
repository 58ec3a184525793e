"""``volar vms``: create, inspect, start, stop and delete VMs."""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

from volant_core.cli.client import ApiClient, ApiError
from volant_core.cli.configs import config, pending_note
from volant_core.cli.console import console
from volant_core.cli.context import pass_client
from volant_core.cli.downloads import download_watch
from volant_core.cli.output import emit, emit_fields, output_option
from volant_core.cli.progress import status_line
from volant_core.cli.seeddocs import inline_documents, read_document
from volant_core.cli.workload import call, operations

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


#: ``-q/--quiet``: print only VM names, one a line (for scripts and shell loops).
quiet_option = click.option("-q", "--quiet", is_flag=True, help="print only the VM names")


@vms.command("list")
@output_option
@quiet_option
@pass_client
def list_vms(client: ApiClient, output: str, quiet: bool) -> None:
    """List VMs.

    Example: volar vms list -o json
    """
    listed = client.json("GET", "/api/v1/vms")
    if quiet:
        for vm in listed:
            click.echo(vm["name"])
    else:
        emit(listed, output, VM_COLUMNS)


@vms.command("get")
@click.argument("name")
@output_option
@pass_client
def get_vm(client: ApiClient, name: str, output: str) -> None:
    """Show one VM; its published ports read ``HOST_PORT/PROTOCOL -> GUEST_IP:GUEST_PORT``.

    Example: volar vms get web-1
    """
    vm = client.json("GET", f"/api/v1/vms/{name}")
    if output == "table":
        vm["published_ports"] = ", ".join(map(port_mapping, vm.get("published_ports", [])))
    emit_fields(vm, output)


def port_mapping(port: dict[str, Any]) -> str:
    """A published port for people: ``8080/tcp -> 10.0.0.5:80``."""
    return f"{port['host_port']}/{port['protocol']} -> {port['guest_ip']}:{port['guest_port']}"


#: Seconds between two looks at a VM being waited for.
POLL_SECONDS = 0.5
#: States a booting VM passes through before it is ``running`` (or ``crashed``).
BOOTING = ("pending", "starting")
_Command = TypeVar("_Command", bound=Callable[..., Any])


def wait_options(command: _Command) -> _Command:
    """Add ``--wait/--no-wait`` and ``--wait-timeout`` to a command that boots a VM."""
    command = click.option(
        "--wait-timeout", type=float, default=180.0, show_default=True, help="seconds to wait"
    )(command)
    return click.option(
        "--wait/--no-wait", default=True, show_default=True, help="wait until the VM is running"
    )(command)


def booted(client: ApiClient, vm: dict, *, wait: bool = False, wait_timeout: float = 180.0) -> dict:
    """``vm`` as the API just answered it, or with ``wait`` the VM once it is no longer booting.

    While waiting, a spinner shows its state on a terminal (see :mod:`volant_core.cli.progress`),
    with a bar of what volantd downloads for it (:mod:`volant_core.cli.downloads`).
    Fails (exit 1, with the VM's ``status_reason``) unless the VM ends ``running``.
    """
    if not wait:
        return vm
    name = vm["name"]
    deadline = time.monotonic() + wait_timeout
    with status_line() as line, download_watch(client, name) as downloads:
        while True:
            line.show(f"vm {name}: {vm['status']}{downloads.describe()}")
            if vm["status"] not in BOOTING:
                break
            if time.monotonic() > deadline:
                raise ApiError(f"vm {name} still {vm['status']} after {wait_timeout:.0f}s", 1)
            line.pause(POLL_SECONDS)
            vm = client.json("GET", f"/api/v1/vms/{name}")
    if vm["status"] != "running":
        raise ApiError(f"vm {name} is {vm['status']}: {vm.get('status_reason') or 'no reason given'}", 1)
    return vm


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
@click.option("--kernel", help="kernel to boot instead of the default (absolute path or URL)")
@click.option("--initramfs", help="initramfs layered over the base image (path or URL)")
@click.option("--initramfs-checksum", help="sha256:<hex> or sha512:<hex> the --initramfs must match")
@click.option("--rootfs", help="root filesystem image the workload runs in (path or URL)")
@click.option("--rootfs-checksum", help="sha256:<hex> or sha512:<hex> the --rootfs must match")
@click.option(
    "--persistent-root/--ephemeral-root",
    default=None,
    help="keep the root filesystem's changes across stop and start, or not (default: the runtime's)",
)
@click.option(
    "--cloud-init-user-data", "user_data", type=click.Path(dir_okay=False), help="cloud-init user-data file"
)
@click.option(
    "--cloud-init-meta-data", "meta_data", type=click.Path(dir_okay=False), help="cloud-init meta-data file"
)
@click.option(
    "--cloud-init-network-config",
    "network_config",
    type=click.Path(dir_okay=False),
    help="cloud-init network-config file",
)
@click.option("--seed-mode", help="seed builder of the cloud-init seed, e.g. vfat (the default) or iso")
@click.option("--device", "devices", multiple=True, help="PCI device to pass through (BDF, repeatable)")
@click.option(
    "--config",
    "config_file",
    type=click.File("r"),
    help="JSON VM configuration (the keys of `vms config set`); the flags above override it",
)
@wait_options
@output_option
@quiet_option
@pass_client
def create_vm(
    client: ApiClient,
    name: str,
    wait: bool,
    wait_timeout: float,
    output: str,
    quiet: bool,
    kernel: str | None,
    initramfs: str | None,
    initramfs_checksum: str | None,
    rootfs: str | None,
    rootfs_checksum: str | None,
    persistent_root: bool | None,
    user_data: str | None,
    meta_data: str | None,
    network_config: str | None,
    seed_mode: str | None,
    devices: tuple[str, ...],
    config_file: TextIO | None,
    **fields: object,
) -> None:
    """Create a VM and boot it.

    Example: volar vms create web-1 --plugin hello-http --memory 512 --initramfs ./app.cpio.gz
    """
    payload: dict[str, Any] = {"name": name, **{k: v for k, v in fields.items() if v is not None}}
    overrides = _load_config(config_file)
    if kernel:
        overrides["kernel_override"] = _location(kernel)
    for medium, location, checksum in (
        ("initramfs", initramfs, initramfs_checksum),
        ("rootfs", rootfs, rootfs_checksum),
    ):
        if location or checksum:
            overrides[medium] = _boot_image(medium, location, checksum)
    if persistent_root is not None:
        overrides["persistent_root"] = persistent_root
    cloud_init = _cloud_init(
        overrides.get("cloud_init"),
        {"user_data": user_data, "meta_data": meta_data, "network_config": network_config},
        seed_mode,
    )
    if cloud_init is not None:
        overrides["cloud_init"] = cloud_init
    if devices:
        overrides["devices"] = {"pci_passthrough": list(devices)}
    if overrides:
        payload["config"] = {**overrides, **_flags_as_config(overrides, payload)}
    vm = booted(client, client.json("POST", "/api/v1/vms", payload), wait=wait, wait_timeout=wait_timeout)
    if quiet:
        click.echo(vm["name"])
    else:
        emit_fields(vm, output)


def _boot_image(medium: str, location: str | None, checksum: str | None) -> dict[str, str]:
    """The ``initramfs`` or ``rootfs`` override from ``--MEDIUM`` and ``--MEDIUM-checksum``."""
    if not location:
        raise click.UsageError(f"--{medium}-checksum needs --{medium}")
    return {"url": _location(location), **({"checksum": checksum} if checksum else {})}


def _load_config(source: TextIO | None) -> dict[str, Any]:
    """The ``--config`` JSON object (empty without one)."""
    if source is None:
        return {}
    try:
        config = json.load(source)
    except ValueError as err:
        raise click.BadParameter(f"not valid JSON: {err}", param_hint="--config") from None
    if not isinstance(config, dict):
        raise click.BadParameter("must hold a JSON object", param_hint="--config")
    return config


def _cloud_init(given: Any, files: dict[str, str | None], seed_mode: str | None) -> Any:
    """The ``cloud_init`` to send: the ``--config`` one (documents given as ``path`` read here) with
    the document flags and ``--seed-mode`` over it; None when neither gives one.
    """
    if given is None and seed_mode is None and not any(files.values()):
        return None
    cloud_init = inline_documents(given if given is not None else {}, "--config")
    if not isinstance(cloud_init, dict):
        return cloud_init  # the daemon refuses it, naming cloud_init
    for name, path in files.items():
        if path is not None:
            flag = "--cloud-init-" + name.replace("_", "-")
            cloud_init[name] = {"inline": True, "content": read_document(path, flag)}
    if seed_mode is not None:
        cloud_init["seed_mode"] = seed_mode
    return cloud_init


def _flags_as_config(config: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """The top-level create flags given, as configuration keys: with ``--config``, flags still win."""
    result: dict[str, Any] = {k: flags[k] for k in ("runtime", "hypervisor", "kernel_cmdline") if k in flags}
    resources = {key: flags[key] for key in ("cpu_cores", "memory_mb") if key in flags}
    if resources:
        result["resources"] = {**(config.get("resources") or {}), **resources}
    if "network_mode" in flags:
        result["network"] = {"mode": flags["network_mode"]}
    return result


def _location(value: str) -> str:
    """A URL as given; a local path made absolute (volantd resolves nothing relative to volar)."""
    return value if "://" in value else str(Path(value).expanduser().resolve())


#: ``--force`` of stop and delete: the VMM is killed at once instead of the guest powered off.
force_option = click.option(
    "--force",
    is_flag=True,
    help="kill the VM at once, even while it starts, instead of powering it off (up to the stop timeout)",
)


def _force_query(force: bool) -> str:
    """The query string asking volantd to kill at once, or none."""
    return "?force=true" if force else ""


def _action(verb: str, help_text: str, *, boots: bool) -> click.Command:
    @click.argument("name")
    @output_option
    @pass_client
    def command(client: ApiClient, name: str, output: str, force: bool = False, **waiting: Any) -> None:
        vm = client.json("POST", f"/api/v1/vms/{name}/{verb}{_force_query(force)}")
        emit_fields(booted(client, vm, **waiting), output)

    command.__doc__ = f"{help_text}\n\nExample: volar vms {verb} web-1"
    return click.command(verb)(wait_options(command) if boots else force_option(command))


for _verb, _help, _boots in (
    ("start", "Boot a stopped or crashed VM (waits until it runs unless --no-wait).", True),
    ("stop", "Power a VM off (--force: kill it at once, even while it starts).", False),
    ("restart", "Stop, then start a VM (waits until it runs unless --no-wait).", True),
):
    vms.add_command(_action(_verb, _help, boots=_boots))


@vms.command("delete")
@click.argument("name")
@force_option
@pass_client
def delete_vm(client: ApiClient, name: str, force: bool) -> None:
    """Delete a VM (powering it off first, or with --force killing it at once) and everything it
    held on the host.

    Example: volar vms delete web-1
    """
    client.call("DELETE", f"/api/v1/vms/{name}{_force_query(force)}")
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


@vms.command("logs")
@click.argument("name")
@click.option(
    "--tail", type=click.IntRange(0, 100_000), help="last N lines first (default: the daemon's, 200)"
)
@click.option("-f", "--follow", is_flag=True, help="keep printing new output until the VM stops (or Ctrl-C)")
@pass_client
def vm_logs(client: ApiClient, name: str, tail: int | None, follow: bool) -> None:
    """Print the guest console: kernel, kestrel and workload output.

    Example: volar vms logs web-1 --tail 50 -f
    """
    query = ([("tail", str(tail))] if tail is not None else []) + ([("follow", "true")] if follow else [])
    path = f"/api/v1/vms/{name}/logs" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    out = sys.stdout.buffer
    try:
        with client.stream(path, timeout=None if follow else client.timeout) as body:
            while chunk := body.read1(65536):
                out.write(chunk)
                out.flush()
    except KeyboardInterrupt:
        return


@vms.command("scale")
@click.argument("name")
@click.option("--cpu", "cpu_cores", type=click.IntRange(1, 64), help="vCPUs")
@click.option("--memory", "memory_mb", type=click.IntRange(128), help="memory in MiB")
@click.option("--restart", is_flag=True, help="restart the VM so the new resources apply now")
@pass_client
def scale_vm(
    client: ApiClient, name: str, cpu_cores: int | None, memory_mb: int | None, restart: bool
) -> None:
    """Change a VM's vCPUs and/or memory (a new configuration version); prints whether a restart is pending.

    Example: volar vms scale web-1 --cpu 2 --memory 1024 --restart
    """
    resources = {k: v for k, v in (("cpu_cores", cpu_cores), ("memory_mb", memory_mb)) if v is not None}
    if not resources:
        raise click.UsageError("give --cpu and/or --memory")
    result = client.json("PATCH", f"/api/v1/vms/{name}/config", {"resources": resources})
    if restart:
        client.json("POST", f"/api/v1/vms/{name}/restart")
    note = pending_note(client, name) or " (no restart pending)"
    click.echo(f"{name}: configuration version {result['version']}{note}")


vms.add_command(config)
for _command in (operations, call, console):
    vms.add_command(_command)
