"""The documentation site builds in strict mode and holds every hook and every ``volar`` command.

The site (``mkdocs.yml``, pages under ``docs/``) is built here, as CI runs the tests, with
``mkdocs build --strict``: a broken link, a link to a missing anchor or a page error fails the
build. Its generated reference pages (HTTP API, CLI) must equal what ``scripts/docs_reference.py``
renders now, like the hook reference (``tests/test_hooks_documented.py``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType

import click
import pluggy
import pytest

from volant_core import hookspecs
from volant_core.cli.volar import cli as volar_cli

ROOT = Path(__file__).resolve().parents[1]
#: Longest a site build may take before the test gives up (a build takes seconds).
BUILD_TIMEOUT = 300


def _load_script(name: str) -> ModuleType:
    """The module of ``scripts/<name>.py`` (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


docs_reference = _load_script("docs_reference")


class _Headings(HTMLParser):
    """The text of every ``<h1>``..``<h6>`` of a page, and every link target, as the reader sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.links: set[str] = set()
        self._open: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self._open = []
        elif tag == "a":
            self.links.update(value for name, value in attrs if name == "href" and value)

    def handle_endtag(self, tag: str) -> None:
        if tag in {"h1", "h2", "h3", "h4", "h5", "h6"} and self._open is not None:
            self.headings.append("".join(self._open).replace("¶", "").strip())
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.append(data)


def _parse(page: Path) -> _Headings:
    parser = _Headings()
    parser.feed(page.read_text())
    return parser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built from the working tree, in strict mode, into a temporary directory."""
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def _hook_names() -> list[str]:
    """Every hook pluggy finds in the specification module."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return [
        name
        for name, caller in vars(manager.hook).items()
        if isinstance(caller, pluggy.HookCaller) and caller.spec is not None
    ]


def _command_paths(command: click.Command, path: tuple[str, ...] = ("volar",)) -> Iterator[str]:
    """``volar``, ``volar vms``, ``volar vms create``, ...: every command of the click tree, as
    ``volar --help`` finds them (``list_commands``/``get_command``: lazily loaded ones too).
    """
    yield " ".join(path)
    if isinstance(command, click.Group):
        context = click.Context(command, info_name=path[-1])
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            assert sub is not None, f"{' '.join(path)} lists {name} but cannot load it"
            yield from _command_paths(sub, (*path, name))


def test_the_tree_and_the_hooks_are_not_empty() -> None:
    """Guards the tests below against passing vacuously."""
    assert len(_hook_names()) > 10
    assert "volar vms config rollback" in set(_command_paths(volar_cli))


@pytest.mark.parametrize("name", _hook_names())
def test_every_hook_has_a_heading_in_the_site(site: Path, name: str) -> None:
    """The built hook reference has a section ``name(args)`` for each hook."""
    headings = _parse(site / "plugins" / "hooks" / "index.html").headings
    assert any(heading.startswith(f"{name}(") for heading in headings), f"no heading for {name} in the site"


@pytest.mark.parametrize("path", sorted(_command_paths(volar_cli)))
def test_every_volar_command_has_a_heading_in_the_site(site: Path, path: str) -> None:
    """The built CLI reference has a section for each command, group and subcommand of ``volar``."""
    headings = _parse(site / "reference" / "cli" / "index.html").headings
    assert path in headings, f"no heading '{path}' in the CLI reference of the site"


def test_every_api_operation_has_a_heading_in_the_site(site: Path) -> None:
    """The built API reference has a section ``METHOD path`` for each operation of openapi.json."""
    headings = set(_parse(site / "reference" / "api" / "index.html").headings)
    spec = docs_reference.json.loads(docs_reference.OPENAPI.read_text())
    wanted = {f"{method} {path}" for _, method, path, _ in docs_reference._operations(spec)}
    assert len(wanted) > 20
    assert wanted <= headings, f"operations without a section: {sorted(wanted - headings)}"


def test_every_adr_is_in_the_navigation(site: Path) -> None:
    """Each ADR under docs/adr/ is built and linked from the site's navigation (the home page's)."""
    links = _parse(site / "index.html").links
    adrs = sorted((ROOT / "docs" / "adr").glob("*.md"))
    assert adrs
    for adr in adrs:
        assert (site / "adr" / adr.stem / "index.html").is_file()
        assert f"adr/{adr.stem}/" in links, f"{adr.name} is not in the site's navigation"


@pytest.mark.parametrize("page", sorted(docs_reference.rendered_pages()), ids=lambda p: p.name)
def test_generated_reference_is_current(page: Path) -> None:
    """The API and CLI reference pages are exactly what the generator renders from the code now."""
    expected = docs_reference.rendered_pages()[page]
    assert page.exists() and page.read_text() == expected, (
        f"{page.relative_to(ROOT)} is out of date; regenerate it: {docs_reference.REGENERATE}"
    )
