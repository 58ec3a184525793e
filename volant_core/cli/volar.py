"""``volar``: the command-line client of volantd.

It starts quickly (docs/adr/0039-metrics-and-cli-startup.md): the root group imports a core
command's module only when that command is used (:data:`CORE_COMMANDS`), and asks the plugins for
their commands (``volant_register_commands``) only to run a name that is not a core command, or to
list the commands (``volar --help``, shell completion) when the cached listing
(:mod:`volant_core.cli.command_listing`) does not match the installed distributions. So
``volar vms list`` imports neither the plugins nor the daemon's modules, nor does ``volar --help``
most of the time.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

import click

from volant_core import __version__
from volant_core.errors import describe_exception
from volant_core.keyfile import read_key_file

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from volant_core.cli.command_listing import Listing

#: The core's commands: name -> ``module:attribute`` of its click command, imported on use.
CORE_COMMANDS = {
    "vms": "volant_core.cli.vms:vms",
    "deployments": "volant_core.cli.deployments:deployments",
    "plugins": "volant_core.cli.runtimes:plugins",
    "system": "volant_core.cli.system:system",
    "events": "volant_core.cli.events:events",
    "image": "volant_core.cli.image:image",
    "payload": "volant_core.cli.payload:payload",
    "quickstart": "volant_core.cli.quickstart:quickstart",
    "doctor": "volant_core.cli.doctor:doctor",
    "setup": "volant_core.cli.setup:setup",
    "openapi": "volant_core.cli.openapi:openapi",
    "completion": "volant_core.cli.completion:completion",
}


def core_command(name: str) -> click.Command:
    """The core command ``name`` of :data:`CORE_COMMANDS`, its module imported now."""
    module, _, attribute = CORE_COMMANDS[name].partition(":")
    command: click.Command = getattr(importlib.import_module(module), attribute)
    return command


class VolarGroup(click.Group):
    """The root group: core commands imported on use, plugin commands added when first needed.

    Listing the commands (``volar --help``, shell completion) reads the cached listing
    (:mod:`volant_core.cli.command_listing`) and builds it again, loading the plugins, only when
    the installed distributions changed. A plugin command named like a core command is never used:
    the core's wins.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._plugin_commands_added = False
        self._listing: Listing | None = None
        self._warned: list[str] = []

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, the plugins' included."""
        return sorted(self.listing().commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The core command ``cmd_name`` (imported now), else a plugin's (asking the plugins)."""
        if cmd_name in CORE_COMMANDS:
            return core_command(cmd_name)
        self._add_plugin_commands()
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The ``Commands`` section of ``--help``, from the listing: no command is imported."""
        click.Group(commands=self.listing().stand_ins()).format_commands(ctx, formatter)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Completions of a command name (from the listing) or of the root's options."""
        from click.shell_completion import CompletionItem

        commands = [
            CompletionItem(name, help=command.get_short_help_str())
            for name, command in sorted(self.listing().stand_ins().items())
            if name.startswith(incomplete) and not command.hidden
        ]
        return commands + click.Command.shell_complete(self, ctx, incomplete)

    def listing(self) -> Listing:
        """Every command's name and help: cached for the installed distributions, else built now
        (and cached). The warnings building it printed are printed again when it comes from the cache.
        """
        if self._listing is not None:
            return self._listing
        from volant_core.cli.command_listing import cache_file, fingerprint, read_listing, write_listing

        path, key = cache_file(), fingerprint(CORE_COMMANDS)
        cached = read_listing(path, key) if path is not None else None
        if cached is None:
            self._listing = self._built_listing()
            if path is not None:
                write_listing(path, key, self._listing)
        else:
            self._listing = cached
            for warning in cached.warnings:
                self._warn(warning)
        return self._listing

    def _built_listing(self) -> Listing:
        """The listing of the real commands: every core command module imported, the plugins asked."""
        from volant_core.cli.command_listing import CommandSummary, Listing

        self._add_plugin_commands()
        commands = {
            **self.commands,
            **{name: core_command(name) for name in CORE_COMMANDS},
        }
        summaries = {name: CommandSummary.of(command) for name, command in commands.items()}
        return Listing(summaries, tuple(self._warned))

    def _add_plugin_commands(self) -> None:
        """Let every plugin add its commands, once; one that raises is reported on stderr and skipped."""
        if self._plugin_commands_added:
            return
        self._plugin_commands_added = True
        from volant_core.plugins import load_plugins  # the plugins and pluggy: only when needed

        plugins = load_plugins()
        hook = "volant_register_commands"
        for owner, impl in plugins.calls.implementations(hook):
            try:
                plugins.calls.call_one(hook, owner, impl, {"cli": self})
            except Exception as err:  # a broken plugin must not take volar down
                distribution = plugins.info[owner].distribution
                self._warn(
                    f"warning: plugin {owner} ({distribution}): {hook} raised {describe_exception(err)}"
                )

    def _warn(self, warning: str) -> None:
        """Print ``warning`` on stderr, once per run."""
        if warning not in self._warned:
            self._warned.append(warning)
            click.echo(warning, err=True)


@click.group(cls=VolarGroup)
@click.version_option(__version__, prog_name="volar")
@click.option(
    "--api",
    envvar=["VOLANT_API", "VOLANT_API_BASE"],
    default="http://127.0.0.1:7777",
    show_default=True,
    help="volantd URL (env VOLANT_API)",
)
@click.option(
    "--api-key",
    envvar="VOLANT_API_KEY",
    help="API key sent on every request (env VOLANT_API_KEY); on the command line every user sees it "
    "in ps: prefer --api-key-file",
)
@click.option(
    "--api-key-file",
    envvar="VOLANT_API_KEY_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="file holding the API key (env VOLANT_API_KEY_FILE)",
)
@click.option("--timeout", type=float, default=60.0, show_default=True, help="seconds per API request")
@click.pass_context
def cli(ctx: click.Context, api: str, api_key: str | None, api_key_file: Path | None, timeout: float) -> None:
    """Drive Volant microVMs.

    \b
    Example:
      volar plugins install examples/hello-http/manifest.json
      volar vms create demo --plugin hello-http
      volar vms agent demo /v1/
    """
    if api_key_file is not None:
        if api_key is not None:
            raise click.UsageError("give --api-key or --api-key-file, not both (mind VOLANT_API_KEY)")
        try:
            api_key = read_key_file(api_key_file.expanduser())
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--api-key-file") from None
    from volant_core.cli.client import ApiClient  # every command needs it, --help does not

    ctx.obj = ApiClient(api, api_key=api_key, timeout=timeout)


def main() -> None:
    """Entry point of the ``volar`` console script."""
    cli()
