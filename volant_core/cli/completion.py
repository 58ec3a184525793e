"""``volar completion``: the shell script that completes volar's commands and options."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script of SHELL; load it from your shell's startup file.

    \b
    Example:
      eval "$(volar completion bash)"            # in ~/.bashrc
      eval "$(volar completion zsh)"             # in ~/.zshrc
      volar completion fish > ~/.config/fish/completions/volar.fish
    """
    root = ctx.find_root()
    prog_name = root.info_name or "volar"
    complete_var = f"_{prog_name}_COMPLETE".replace("-", "_").upper()
    completer = get_completion_class(shell)
    assert completer is not None  # every name in SHELLS is one click ships
    click.echo(completer(root.command, {}, prog_name, complete_var).source())
