"""``volantd``: the Volant control plane.

Every ``VOLANT_*`` variable of :data:`volant_core.settings.ENVIRONMENT` has an option, generated
from that map (``VOLANT_BOOT_TIMEOUT`` -> ``--boot-timeout``), so the two cannot drift apart.
"""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from volant_core import __version__
from volant_core.agent.wakeup import SignalSafeEvent
from volant_core.cli.output import emit_table
from volant_core.daemon import Daemon, build_daemon
from volant_core.errors import VolantError
from volant_core.plugin_settings import PluginSetting, settings_of
from volant_core.plugins import Plugins, load_plugins
from volant_core.settings import ENVIRONMENT, Settings, load_settings
from volant_core.store.database import connect
from volant_core.store.migrate import applied_versions, migrate
from volant_core.vm import ACTIVE_STATES

log = logging.getLogger("volant_core.volantd")

F = TypeVar("F", bound=Callable[..., Any])

#: Longest a SIGTERM/SIGINT waits for its handler to run in the main thread (seconds).
SIGNAL_CHECK_S = 0.5
#: Older option names kept working beside the generated ones.
ALIASES = {"VOLANT_API_LISTEN": ("--listen",), "VOLANT_DB_PATH": ("--db",)}
#: Variables with no option: a secret on the command line is shown to every user by ``ps``.
ENVIRONMENT_ONLY = frozenset({"VOLANT_API_KEY"})


def option_name(variable: str) -> str:
    """The option of an environment variable: ``VOLANT_API_KEY_FILE`` -> ``--api-key-file``."""
    return "--" + variable.removeprefix("VOLANT_").lower().replace("_", "-")


def settings_options(variables: list[str]) -> Callable[[F], F]:
    """Decorate a command with one option per variable; the command receives them as ``**settings``
    keyword arguments named after the variable (``volant_api_key``). Values are validated by
    :func:`load_settings`, exactly as the variables are.
    """

    def decorate(command: F) -> F:
        for variable in reversed(variables):
            field = ENVIRONMENT[variable]
            info = Settings.model_fields[field]
            shown = "" if info.is_required() or info.default in (None, ()) else f"; default {info.default}"
            command = click.option(
                option_name(variable),
                *ALIASES.get(variable, ()),
                variable.lower(),
                metavar=field.upper(),
                help=f"env {variable}{shown}",
            )(command)
        return command

    return decorate


def settings_from_options(values: dict[str, str | None]) -> Settings:
    """Settings from the environment, overridden by the options given (two options of one field
    must agree); options of plugin settings (not volantd's own variables) go to the plugins.
    """
    overrides: dict[str, str] = {}
    plugin_overrides: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        variable = key.upper()
        if variable not in ENVIRONMENT:
            plugin_overrides[variable] = value
            continue
        field = ENVIRONMENT[variable]
        if overrides.get(field, value) != value:
            raise click.UsageError(f"{option_name(variable)} contradicts another option setting {field}")
        overrides[field] = value
    try:
        return load_settings(None, plugin_overrides, **overrides)
    except VolantError as err:
        raise click.ClickException(err.message) from None


def plugin_settings(plugins: Plugins) -> list[PluginSetting]:
    """Every setting the loaded plugins declared, by plugin."""
    return [
        setting
        for name, model in sorted(plugins.registries.settings.items())
        for setting in settings_of(name, model)
    ]


def add_plugin_options(commands: list[click.Command], settings: list[PluginSetting]) -> None:
    """Give ``commands`` one option per plugin setting (``--qemu-accel`` for ``VOLANT_QEMU_ACCEL``),
    passed to the command as ``volant_qemu_accel`` like volantd's own.
    """
    for command in commands:
        for setting in settings:
            command.params.append(
                click.Option([setting.option, setting.variable.lower()], metavar="VALUE", help=setting.help)
            )


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time``, ``level``, ``logger``, ``message`` (and ``exception``)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, form: str) -> None:
    """Log to stderr at ``level``, as text lines or JSON lines."""
    handler = logging.StreamHandler()
    if form == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def list_plugins(plugins: Plugins) -> None:
    """Print every code plugin found through entry points, with its status and error."""
    emit_table(
        [p.to_dict() for p in plugins.info.values()],
        [
            ("NAME", "name"),
            ("STATUS", "status"),
            ("DISTRIBUTION", "distribution"),
            ("VERSION", "version"),
            ("ERROR", "error"),
        ],
    )


def stop_all_vms(daemon: Daemon) -> None:
    """Power off every VM that runs (``--stop-vms-on-exit``); one that fails is logged, not fatal."""
    for vm in daemon.orchestrator.list_vms():
        if vm.status in ACTIVE_STATES:
            log.info("stopping vm %s", vm.name)
            try:
                daemon.orchestrator.stop_vm(vm.name)
            except VolantError as err:
                log.warning("could not stop vm %s: %s", vm.name, err.message)


def serve(settings: Settings, stop_vms_on_exit: bool) -> None:
    """Run the daemon until SIGTERM or SIGINT."""
    try:
        daemon = build_daemon(settings, plugins=_plugins())
        daemon.start()
    except VolantError as err:
        raise click.ClickException(err.message) from None
    except OSError as err:
        raise click.ClickException(f"cannot start: {err}") from None
    done = SignalSafeEvent()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(SIGNAL_CHECK_S):  # a plain wait() can miss a signal another thread received
        pass
    log.info("volantd stopping")
    if stop_vms_on_exit:
        daemon.deployments.stop()  # no member is replaced while the VMs stop
        stop_all_vms(daemon)
    daemon.stop()


def _refuse_key_option(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Refuse ``--api-key``: the key would be readable by every user of the host (``ps``)."""
    if value is not None:
        raise click.BadParameter(
            "a key on the command line is shown to every user by ps; put it in a file only volantd's "
            "user can read and give --api-key-file FILE (or set VOLANT_API_KEY in the environment)",
            param_hint="--api-key",
        )


def serve_options(command: F) -> F:
    """The options of serving: one per ``VOLANT_*`` variable but :data:`ENVIRONMENT_ONLY`,
    ``--stop-vms-on-exit``, and a hidden ``--api-key`` that is refused with the way to give a key.
    """
    command = click.option(
        "--api-key", hidden=True, expose_value=False, callback=_refuse_key_option, metavar="KEY"
    )(command)
    command = click.option(
        "--stop-vms-on-exit",
        is_flag=True,
        help="power off every VM on shutdown (default: VMs keep running, re-adopted at the next start)",
    )(command)
    return settings_options([variable for variable in ENVIRONMENT if variable not in ENVIRONMENT_ONLY])(
        command
    )


@click.group(invoke_without_command=True)
@click.version_option(__version__, prog_name="volantd")
@click.option("--list-plugins", "show_plugins", is_flag=True, help="list code plugins and exit")
@serve_options
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning"]), default="info", show_default=True
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one object a line with time, level, logger and message",
)
@click.pass_context
def cli(
    ctx: click.Context,
    show_plugins: bool,
    log_level: str,
    log_format: str,
    stop_vms_on_exit: bool,
    **settings: str | None,
) -> None:
    """Serve the Volant API until SIGTERM or SIGINT (without a subcommand); VMs keep running after
    it exits unless --stop-vms-on-exit. Options override the VOLANT_* variables they name.

    \b
    Example:
      volantd --listen 127.0.0.1:7777 --state-dir ~/.volant --log-format json
      volantd serve --listen 127.0.0.1:7777   (the same, spelled out)
      volantd migrate --state-dir ~/.volant
    """
    configure_logging(log_level, log_format)
    if ctx.invoked_subcommand is not None:
        return
    if show_plugins:
        list_plugins(_plugins())
        return
    serve(settings_from_options(settings), stop_vms_on_exit)


@cli.command("serve")
@serve_options
@click.pass_context
def serve_command(ctx: click.Context, stop_vms_on_exit: bool, **settings: str | None) -> None:
    """Serve the Volant API until SIGTERM or SIGINT: what ``volantd`` does without a subcommand.

    Options given here win over the same ones given before ``serve``.

    Example: volantd --log-format json serve --listen 127.0.0.1:7777 --state-dir ~/.volant
    """
    before = ctx.parent.params if ctx.parent is not None else {}
    merged = {key: before.get(key) if value is None else value for key, value in settings.items()}
    serve(settings_from_options(merged), stop_vms_on_exit or bool(before.get("stop_vms_on_exit")))


@cli.command("migrate")
@settings_options(["VOLANT_STATE_DIR", "VOLANT_DB_PATH"])
def migrate_command(**settings: str | None) -> None:
    """Open the state database, apply the migrations it lacks and print the versions applied.

    volantd migrates on start too; this does it ahead, e.g. before an upgrade. A second run is a no-op.

    Example: volantd migrate --state-dir ~/.volant
    """
    path: Path = settings_from_options(settings).db_path
    db = connect(path)
    try:
        applied = migrate(db)
        current = applied_versions(db)
    finally:
        db.close()
    if applied:
        click.echo(f"{path}: applied {', '.join(map(str, applied))}")
    else:
        click.echo(f"{path}: up to date")
    click.echo(f"schema versions: {', '.join(map(str, current)) or 'none'}")


_loaded: list[Plugins] = []


def _plugins(extra: Iterable[tuple[str, object]] = ()) -> Plugins:
    """The plugins of this process, loaded once (by :func:`main`, or on first use), with the
    in-process plugins ``extra`` registered after the installed ones.
    """
    if not _loaded:
        _loaded.append(load_plugins(extra=tuple(extra)))
    return _loaded[0]


def main(extra_plugins: Iterable[tuple[str, object]] = ()) -> None:
    """Entry point of the ``volantd`` console script: the plugins' settings become options.

    ``extra_plugins`` registers in-process plugins ``(name, module_or_object)`` as well (a program
    embedding volantd, e.g. :mod:`volant_core.testing.host_volantd`); the console script passes none.
    """
    add_plugin_options([cli, serve_command], plugin_settings(_plugins(extra_plugins)))
    cli()
