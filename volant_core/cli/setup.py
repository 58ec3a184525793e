"""``volar setup``: prepare this host for bridged networking, or undo it (:mod:`volant_core.hostsetup`)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from volant_core.cli.output import emit_data, output_option
from volant_core.errors import VolantError
from volant_core.hostsetup import run
from volant_core.hostsetup.bridges import bridge_variables
from volant_core.hostsetup.options import DEFAULT_API_KEY_FILE, DEFAULT_BRIDGE, SetupOptions, parse_options
from volant_core.plugins import load_plugins
from volant_core.settings import Settings


class SetupFailed(click.ClickException):
    """A refused option or a failed step, printed as ``Error: <message>`` with the error's exit code."""

    def __init__(self, err: VolantError) -> None:
        super().__init__(err.message)
        self.exit_code = err.exit_code  # type: ignore[misc]  # click reads it per instance


def _program(name: str) -> str:
    """The absolute path of console script ``name``: next to this Python, else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise click.ClickException(
            f"cannot find {name} next to {sys.executable} or on PATH; install volant-core"
        )
    return found


@click.command("setup")
@click.option("--bridge", default=DEFAULT_BRIDGE, show_default=True, help="bridge the VMs' taps join")
@click.option(
    "--subnet",
    envvar="VOLANT_SUBNET",
    default=str(Settings.model_fields["subnet"].default),
    show_default=True,
    help="the VMs' IPv4 subnet (env VOLANT_SUBNET)",
)
@click.option(
    "--host-ip",
    envvar="VOLANT_HOST_IP",
    default=str(Settings.model_fields["host_ip"].default),
    show_default=True,
    help="the host's address on the bridge, the VMs' gateway (env VOLANT_HOST_IP)",
)
@click.option(
    "--listen",
    envvar="VOLANT_API_LISTEN",
    default=Settings.model_fields["api_listen"].default,
    show_default=True,
    help="volantd's API address, written into its unit (env VOLANT_API_LISTEN)",
)
@click.option(
    "--api-key-file",
    envvar="VOLANT_API_KEY_FILE",
    default=str(DEFAULT_API_KEY_FILE),
    show_default=True,
    help="volantd's API key; generated (mode 0600) when missing (env VOLANT_API_KEY_FILE)",
)
@click.option(
    "--root", default="/", show_default=True, help="write every file under this directory instead of /"
)
@click.option(
    "--no-systemctl", is_flag=True, help="write the units but do not run systemctl (no systemd here)"
)
@click.option("--dry-run", is_flag=True, help="print the plan and change nothing")
@click.option("--uninstall", is_flag=True, help="undo exactly what earlier runs changed, from their record")
@output_option
def setup(
    bridge: str,
    subnet: str,
    host_ip: str,
    listen: str,
    api_key_file: str,
    root: str,
    no_systemctl: bool,
    dry_run: bool,
    uninstall: bool,
    output: str,
) -> None:
    """Prepare this host for bridged VMs (as root): the bridge and its address, ip_forward, NAT and
    forward rules of Volant's own, the systemd units of volantd and of a boot-time re-apply.

    A second run changes nothing; --uninstall puts back what the host had (a bridge that existed
    before stays). The record of what was changed is /var/lib/volant/setup.json.

    \b
    Example:
      sudo volar setup --dry-run
      sudo volar setup --subnet 10.20.0.0/24 --host-ip 10.20.0.1
      sudo volar setup --uninstall
    """
    if os.geteuid() != 0:
        raise click.ClickException(
            "volar setup changes links, kernel parameters and firewall rules (and reads the firewall "
            "rules even with --dry-run): run it as root, e.g. sudo volar setup --dry-run"
        )
    try:
        options = parse_options(
            bridge=bridge,
            subnet=subnet,
            host_ip=host_ip,
            listen=listen,
            api_key_file=api_key_file,
            volar=_program("volar"),
            volantd=_program("volantd"),
            root=root,
            systemctl=not no_systemctl,
            bridge_variables=bridge_variables(load_plugins()),
        )
        if uninstall:
            _report(run.uninstall(options), "undone", options, output)
            return
        steps, record = run.plan(options)
        if not dry_run:
            run.apply(options, steps, record)
    except VolantError as err:
        raise SetupFailed(err) from None
    _report([step.summary for step in steps], "planned" if dry_run else "done", options, output)


def _report(lines: list[str], verb: str, options: SetupOptions, output: str) -> None:
    """What was done (or would be): a list for people, ``{verb: [...]}`` for scripts."""
    if output != "table":
        emit_data({verb: lines, "record": str(run.record_path(options))}, output)
        return
    if not lines:
        nothing = {"undone": "nothing to undo: no setup record", "planned": "nothing to change"}
        said = nothing.get(verb, "nothing to change: the host is already set up")
        click.echo(f"{said} ({run.record_path(options)})")
        return
    for line in lines:
        click.echo(f"{verb}: {line}")
