"""The hook specifications and docs/plugins/ stay in step.

Every hook in :mod:`volant_core.hookspecs` needs a docstring and a section in
``docs/plugins/hooks.md`` whose heading is ``name(arg, ...)`` with the hook's
real arguments, in the module's order (which keeps the groups). No heading may
name a hook that does not exist, and every ``@hookimpl`` in the docs' Python
examples must implement a real hook with arguments that hook passes: readers
copy those examples.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy
import pytest

from volant_core import hookspecs

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins"
HOOKS_DOC = DOCS / "hooks.md"
#: ``### volant_name(arg, ...)``: the heading of one hook's section.
HOOK_HEADING = re.compile(r"^###\s+`?(?P<name>\w+)\((?P<args>[^)]*)\)`?\s*$", re.MULTILINE)
PYTHON_BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Spec:
    """One hook specification as pluggy reads it."""

    function: Callable[..., Any]
    argnames: tuple[str, ...]
    firstresult: bool


def _specs() -> dict[str, Spec]:
    """Every hook specification pluggy finds in the module, keyed by hook name, in source order."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    specs = {
        caller.name: Spec(
            caller.spec.function, tuple(caller.spec.argnames), bool(caller.spec.opts.get("firstresult"))
        )
        for caller in vars(manager.hook).values()
        if isinstance(caller, pluggy.HookCaller) and caller.spec is not None
    }
    return dict(sorted(specs.items(), key=lambda item: inspect.getsourcelines(item[1].function)[1]))


SPECS = _specs()


def _documented() -> dict[str, tuple[str, ...]]:
    """Hook headings of hooks.md in order: name -> the argument names the heading shows."""
    return {
        m["name"]: tuple(arg.strip() for arg in m["args"].split(",") if arg.strip())
        for m in HOOK_HEADING.finditer(HOOKS_DOC.read_text())
    }


def _sections() -> dict[str, str]:
    """The text of each hook's section of hooks.md, from its heading to the next heading."""
    text = HOOKS_DOC.read_text()
    starts = list(re.finditer(r"^#{1,3} .*$", text, re.MULTILINE))
    sections = {}
    for heading, following in zip(starts, [*starts[1:], None], strict=True):
        if match := HOOK_HEADING.match(heading.group()):
            sections[match["name"]] = text[heading.end() : following.start() if following else None]
    return sections


def _doc_hookimpls() -> list[tuple[str, str, tuple[str, ...]]]:
    """``(document, function name, parameters)`` of every ``@hookimpl`` function in the docs' examples."""
    found = []
    for doc in sorted(DOCS.glob("*.md")):
        for block in PYTHON_BLOCK.finditer(doc.read_text()):
            tree = ast.parse(block["code"], filename=doc.name)
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef) and any(_is_hookimpl(d) for d in node.decorator_list):
                    args = node.args
                    params = tuple(a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs])
                    found.append((doc.name, node.name, params))
    return found


def _is_hookimpl(decorator: ast.expr) -> bool:
    """Whether a decorator is ``hookimpl`` or ``hookimpl(...)``."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Name) and target.id == "hookimpl"


def test_there_are_hookspecs() -> None:
    """Guards the tests below against passing vacuously."""
    assert len(SPECS) > 10


@pytest.mark.parametrize("name", SPECS)
def test_hookspec_is_named_and_has_a_docstring(name: str) -> None:
    """Each hook carries the project prefix and says what it is for where it is defined."""
    assert name.startswith("volant_"), f"hook {name} must start with 'volant_'"
    assert inspect.getdoc(SPECS[name].function), f"hook {name} has no docstring in volant_core/hookspecs.py"


@pytest.mark.parametrize("name", SPECS)
def test_hookspec_is_documented(name: str) -> None:
    """Each hook has a heading ``name(args)`` in hooks.md naming exactly its arguments."""
    documented = _documented()
    assert name in documented, f"{name} has no '### {name}(...)' section in {HOOKS_DOC.name}"
    assert documented[name] == SPECS[name].argnames, (
        f"the heading of {name} in {HOOKS_DOC.name} shows {documented[name]}, "
        f"the hook takes {SPECS[name].argnames}"
    )


def test_docs_name_only_existing_hooks() -> None:
    """No section of hooks.md documents a hook that was renamed or removed."""
    unknown = sorted(set(_documented()) - set(SPECS))
    assert not unknown, f"{HOOKS_DOC.name} documents hooks that do not exist: {unknown}"


def test_hooks_are_documented_in_module_order() -> None:
    """Sections follow volant_core/hookspecs.py, so the doc keeps the module's groups."""
    assert [n for n in _documented() if n in SPECS] == list(SPECS)


@pytest.mark.parametrize("name", [n for n, spec in SPECS.items() if spec.firstresult])
def test_firstresult_hooks_say_so(name: str) -> None:
    """A firstresult hook's section tells the reader that the first non-None answer wins."""
    assert "firstresult" in _sections().get(name, ""), f"the section of {name} does not mention firstresult"


def test_every_hook_has_an_example() -> None:
    """Each hook section shows an implementation of that hook."""
    examples = {name for _, name, _ in _doc_hookimpls()}
    assert not set(SPECS) - examples, f"hooks without an example: {sorted(set(SPECS) - examples)}"


@pytest.mark.parametrize(("doc", "name", "params"), _doc_hookimpls(), ids=lambda v: str(v))
def test_doc_examples_implement_real_hooks(doc: str, name: str, params: tuple[str, ...]) -> None:
    """An example implementation names a real hook and asks only for arguments that hook passes."""
    assert name in SPECS, f"{doc}: example implements {name}, which is not a Volant hook"
    extra = set(params) - set(SPECS[name].argnames)
    assert not extra, f"{doc}: example {name} asks for {sorted(extra)}, which the hook does not pass"
