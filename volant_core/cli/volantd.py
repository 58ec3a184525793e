"""``volantd``: the Volant control plane."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import click

from volant_core import __version__
from volant_core.cli.output import emit_table
from volant_core.daemon import build_daemon
from volant_core.errors import VolantError
from volant_core.plugins import load_plugins
from volant_core.registry import build_registries
from volant_core.settings import load_settings


def list_plugins() -> None:
    """Print every code plugin found through entry points, with its status and error."""
    host = load_plugins()
    build_registries(host)
    emit_table(
        [p.to_dict() for p in host.plugins.values()],
        [
            ("NAME", "name"),
            ("STATUS", "status"),
            ("DISTRIBUTION", "distribution"),
            ("VERSION", "version"),
            ("ERROR", "error"),
        ],
    )


@click.command()
@click.version_option(__version__, prog_name="volantd")
@click.option("--list-plugins", "show_plugins", is_flag=True, help="list code plugins and exit")
@click.option("--listen", help="HOST:PORT to serve on (env VOLANT_API_LISTEN, default 127.0.0.1:7777)")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), help="env VOLANT_STATE_DIR")
@click.option(
    "--db", type=click.Path(dir_okay=False, path_type=Path), help="SQLite file (env VOLANT_DB_PATH)"
)
@click.option(
    "--runtime-dir", type=click.Path(file_okay=False, path_type=Path), help="env VOLANT_RUNTIME_DIR"
)
@click.option("--hypervisor", help="hypervisor plugin for new VMs (env VOLANT_HYPERVISOR, default qemu)")
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning"]), default="info", show_default=True
)
def cli(
    show_plugins: bool,
    listen: str | None,
    state_dir: Path | None,
    db: Path | None,
    runtime_dir: Path | None,
    hypervisor: str | None,
    log_level: str,
) -> None:
    """Serve the Volant API until SIGTERM or SIGINT; VMs keep running after it exits.

    Example: volantd --listen 127.0.0.1:7777 --state-dir ~/.volant
    """
    if show_plugins:
        list_plugins()
        return
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(
            api_listen=listen, state_dir=state_dir, db_path=db, runtime_dir=runtime_dir, hypervisor=hypervisor
        )
        daemon = build_daemon(settings)
        daemon.start()
    except VolantError as err:
        raise click.ClickException(err.message) from None
    except OSError as err:
        raise click.ClickException(f"cannot start: {err}") from None
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    daemon.stop()


def main() -> None:
    """Entry point of the ``volantd`` console script."""
    cli()
