"""Every volar and volantd command documents an example and is run by at least one test.

A command counts as run when its path appears in a test as consecutive string literals of one
call, list or tuple, e.g. ``volar(api, "vms", "config", "set", ...)`` or
``[str(VOLANTD), "migrate", ...]``: adding a command without a test that invokes it fails here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from volant_core.cli.volantd import cli as volantd_cli
from volant_core.cli.volar import cli as volar_cli

TESTS = Path(__file__).resolve().parent
TREES = {"volar": volar_cli, "volantd": volantd_cli}


def walk(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command below ``command`` (itself included) with its path of names; through
    ``list_commands`` and ``get_command``, as click finds them (volar imports its commands lazily).
    """
    yield path, command
    if isinstance(command, click.Group):
        context = click.Context(command)
        for name in sorted(command.list_commands(context)):
            sub = command.get_command(context, name)
            assert sub is not None, f"{name} is listed but cannot be found"
            yield from walk(sub, (*path, name))


COMMANDS = [(tool, path, command) for tool, root in TREES.items() for path, command in walk(root)]
#: Commands a user runs: leaves, and groups that do something without a subcommand (volantd serves).
LEAVES = [
    (tool, path)
    for tool, path, command in COMMANDS
    if not isinstance(command, click.Group) or command.invoke_without_command
]


def literal_runs(source: str) -> Iterator[tuple[str, ...]]:
    """Runs of consecutive string literals among the arguments of each call and the items of each
    list or tuple of ``source``.
    """
    for node in ast.walk(ast.parse(source)):
        items = (
            node.args
            if isinstance(node, ast.Call)
            else node.elts
            if isinstance(node, ast.List | ast.Tuple)
            else []
        )
        run: list[str] = []
        for item in [*items, None]:
            if isinstance(item, ast.Constant) and isinstance(item.value, str):
                run.append(item.value)
            else:
                if run:
                    yield tuple(run)
                run = []


def invoked_paths() -> set[tuple[str, ...]]:
    """Every contiguous slice of every literal run in the test sources (this file excluded)."""
    found: set[tuple[str, ...]] = set()
    for source in sorted(TESTS.rglob("*.py")):
        if source.resolve() == Path(__file__).resolve():
            continue
        for run in literal_runs(source.read_text()):
            found.update(run[i:j] for i in range(len(run)) for j in range(i + 1, len(run) + 1))
    return found


@pytest.mark.parametrize(
    ("tool", "path", "command"),
    COMMANDS,
    ids=[f"{tool} {' '.join(path)}".strip() for tool, path, _ in COMMANDS],
)
def test_help_has_an_example(tool: str, path: tuple[str, ...], command: click.Command) -> None:
    assert command.help and "Example:" in command.help, (
        f"`{tool} {' '.join(path)}` has no Example: in its help"
    )


def test_every_command_is_invoked_by_a_test() -> None:
    invoked = invoked_paths()
    untested = [f"{tool} {' '.join(path)}" for tool, path in LEAVES if path and path not in invoked]
    assert not untested, f"no test runs: {', '.join(untested)}"


def test_the_walk_finds_the_commands() -> None:
    """Guards the two tests above against an empty or partial walk."""
    names = {f"{tool} {' '.join(path)}".strip() for tool, path in LEAVES}
    assert {"volar vms logs", "volar vms config set", "volar events", "volantd", "volantd migrate"} <= names
