"""The hook specifications, their generated reference, docs/plugins/ and the tests stay in step.

``docs/plugins/hooks.md`` is rendered from :mod:`volant_core.hookspecs` by
:mod:`volant_core.hookdoc` and must equal what it renders now. Every hook has a
policy, a markdown docstring with an example implementing it, and a section
whose heading is ``name(arg, ...)`` with the hook's real arguments, in the
module's order. Every ``@hookimpl`` in the docs' Python examples must implement
a real hook with arguments that hook passes: readers copy those examples. And
every hook has a behaviour test somewhere, or is named in an explicit allowlist.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy
import pytest

from volant_core import hookdoc, hookspecs
from volant_core.hookspecs import Policy, policy_of

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "plugins"
HOOKS_DOC = DOCS / "hooks.md"
#: ``### volant_name(arg, ...)``: the heading of one hook's section.
HOOK_HEADING = re.compile(r"^###\s+`?(?P<name>\w+)\((?P<args>[^)]*)\)`?\s*$", re.MULTILINE)
PYTHON_BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```", re.MULTILINE | re.DOTALL)
#: reST markup that would show up verbatim in the markdown reference.
REST_MARKUP = re.compile(r"(?<!`)``(?!`)|:(?:class|func|meth|mod|attr|data|exc):`")
#: Where behaviour tests live: the core's tests and each plugin package's own.
TEST_ROOTS = [
    ROOT / "tests",
    *sorted(ROOT.glob("hypervisors/*/tests")),
    *sorted(ROOT.glob("plugins/*/tests")),
]
#: ``HookCaller`` methods that call a hook named by their first argument.
CALLER_METHODS = frozenset({"notify", "validate", "resolve", "per_plugin", "call_one"})

#: Hooks no test exercises yet: neither implemented by a test plugin nor called by a test. Each
#: entry is a missing test to write; remove the entry with it (a test below fails on a stale one).
WITHOUT_BEHAVIOUR_TEST: frozenset[str] = frozenset()


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
RENDERED = hookdoc.render()


def _documented() -> dict[str, tuple[str, ...]]:
    """Hook headings of the rendered reference in order: name -> the argument names the heading shows."""
    return {
        m["name"]: tuple(arg.strip() for arg in m["args"].split(",") if arg.strip())
        for m in HOOK_HEADING.finditer(RENDERED)
    }


def _sections() -> dict[str, str]:
    """The text of each hook's section of the rendered reference, from its heading to the next heading."""
    starts = list(re.finditer(r"^#{1,3} .*$", RENDERED, re.MULTILINE))
    sections = {}
    for heading, following in zip(starts, [*starts[1:], None], strict=True):
        if match := HOOK_HEADING.match(heading.group()):
            sections[match["name"]] = RENDERED[heading.end() : following.start() if following else None]
    return sections


def _hookimpls(text: str, filename: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """``(function name, parameters)`` of every ``@hookimpl`` function in the Python blocks of ``text``
    (a method's ``self`` left out: pluggy does not pass it by name).
    """
    for block in PYTHON_BLOCK.finditer(text):
        for node in ast.walk(ast.parse(block["code"], filename=filename)):
            if isinstance(node, ast.FunctionDef) and any(_is_hookimpl(d) for d in node.decorator_list):
                args = node.args
                params = tuple(a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs])
                yield node.name, params[1:] if params[:1] == ("self",) else params


def _doc_hookimpls() -> list[tuple[str, str, tuple[str, ...]]]:
    """``(document, function name, parameters)`` of every ``@hookimpl`` function in the docs' examples."""
    return [
        (doc.name, name, params)
        for doc in sorted(DOCS.glob("*.md"))
        for name, params in _hookimpls(doc.read_text(), doc.name)
    ]


def _is_hookimpl(decorator: ast.expr) -> bool:
    """Whether a decorator is ``hookimpl`` or ``hookimpl(...)``, plain or as an attribute."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
    return name == "hookimpl"


def _exercised_hooks() -> set[str]:
    """Hooks the test sources implement in a test plugin or call (through the caller or directly)."""
    found: set[str] = set()
    for root in TEST_ROOTS:
        for path in root.rglob("*.py"):
            if path.resolve() == Path(__file__).resolve():
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.FunctionDef) and any(_is_hookimpl(d) for d in node.decorator_list):
                    found.add(node.name)
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    found.add(node.func.attr)
                    first = node.args[0] if node.args else None
                    if node.func.attr in CALLER_METHODS and isinstance(first, ast.Constant):
                        found.add(str(first.value))
    return found & set(SPECS)


def test_there_are_hookspecs() -> None:
    """Guards the tests below against passing vacuously."""
    assert len(SPECS) > 10


def test_hooks_doc_is_generated() -> None:
    """hooks.md is exactly what the generator renders from the specifications now."""
    assert HOOKS_DOC.read_text() == RENDERED, (
        f"{HOOKS_DOC.relative_to(ROOT)} is out of date with volant_core/hookspecs.py; "
        f"regenerate it: {hookdoc.REGENERATE}"
    )


def test_generator_renders_every_hook() -> None:
    """The generator finds the hooks pluggy finds, in the same order."""
    assert [hook.name for hook in hookdoc.hooks_of(hookspecs)] == list(SPECS)


@pytest.mark.parametrize("name", SPECS)
def test_hookspec_has_a_policy(name: str) -> None:
    """Each hook declares how it is called, and firstresult exactly when it is a resolution hook."""
    policy = policy_of(SPECS[name].function)
    assert SPECS[name].firstresult == (policy == Policy.RESOLUTION)


@pytest.mark.parametrize("name", SPECS)
def test_hookspec_is_named_and_has_a_markdown_docstring(name: str) -> None:
    """Each hook carries the project prefix and says what it is for, in markdown, where it is defined."""
    assert name.startswith("volant_"), f"hook {name} must start with 'volant_'"
    docstring = inspect.getdoc(SPECS[name].function)
    assert docstring, f"hook {name} has no docstring in volant_core/hookspecs.py"
    assert not REST_MARKUP.search(docstring), f"the docstring of {name} uses reST markup; write markdown"


@pytest.mark.parametrize("name", SPECS)
def test_hookspec_is_documented(name: str) -> None:
    """Each hook has a heading ``name(args)`` in the reference naming exactly its arguments."""
    documented = _documented()
    assert name in documented, f"{name} has no '### {name}(...)' section in the rendered reference"
    assert documented[name] == SPECS[name].argnames, (
        f"the heading of {name} shows {documented[name]}, the hook takes {SPECS[name].argnames}"
    )


def test_hooks_are_documented_in_module_order() -> None:
    """Sections follow volant_core/hookspecs.py, so the reference keeps the module's groups."""
    assert list(_documented()) == list(SPECS)


@pytest.mark.parametrize("name", [n for n, spec in SPECS.items() if spec.firstresult])
def test_firstresult_hooks_say_so(name: str) -> None:
    """A firstresult hook's section tells the reader that the first non-None answer wins."""
    assert "firstresult" in _sections().get(name, ""), f"the section of {name} does not mention firstresult"


@pytest.mark.parametrize("name", SPECS)
def test_every_hook_has_an_example(name: str) -> None:
    """Each hook's docstring shows an implementation of that hook."""
    examples = {impl for impl, _ in _hookimpls(inspect.getdoc(SPECS[name].function) or "", name)}
    assert name in examples, f"the docstring of {name} has no ```python example implementing it"


@pytest.mark.parametrize(("doc", "name", "params"), _doc_hookimpls(), ids=lambda v: str(v))
def test_doc_examples_implement_real_hooks(doc: str, name: str, params: tuple[str, ...]) -> None:
    """An example implementation names a real hook and asks only for arguments that hook passes."""
    assert name in SPECS, f"{doc}: example implements {name}, which is not a Volant hook"
    extra = set(params) - set(SPECS[name].argnames)
    assert not extra, f"{doc}: example {name} asks for {sorted(extra)}, which the hook does not pass"


def test_every_hook_has_a_behaviour_test() -> None:
    """A test implements or calls each hook, unless the allowlist names it as a test still to write."""
    untested = set(SPECS) - _exercised_hooks() - WITHOUT_BEHAVIOUR_TEST
    assert not untested, f"hooks no test implements or calls: {sorted(untested)}; write one"


def test_behaviour_test_allowlist_is_current() -> None:
    """The allowlist names only real hooks that still lack a test."""
    stale = WITHOUT_BEHAVIOUR_TEST - (set(SPECS) - _exercised_hooks())
    assert not stale, f"remove {sorted(stale)} from WITHOUT_BEHAVIOUR_TEST: they exist no more or have a test"
