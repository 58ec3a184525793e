"""Render the hook reference, ``docs/plugins/hooks.md``, from :mod:`volant_core.hookspecs`.

The page is generated so that it cannot drift from the code: its introduction is the module
documentation of :mod:`volant_core.hookspecs`, its groups are that module's banner comments, and
each hook's section is the hook's heading, signature, policy and docstring (markdown, with an
example). After editing the specifications, regenerate the page::

    python -m volant_core.hookdoc > docs/plugins/hooks.md
"""

from __future__ import annotations

import inspect
import io
import re
import sys
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

from volant_core import hookspecs
from volant_core.hookspecs import POLICY_ATTRIBUTE, Policy, policy_of

#: The command that writes the page (named in the page and in the test that compares them).
REGENERATE = "python -m volant_core.hookdoc > docs/plugins/hooks.md"

#: What each policy means for an implementation, one line under each hook's signature.
POLICY_LINES = {
    Policy.REGISTRATION: (
        "**Registration:** called once per plugin when the plugins load. Raising, or returning "
        "anything but a list of what the signature shows, fails the plugin, which then keeps "
        "nothing it registered."
    ),
    Policy.VALIDATION: (
        "**Validation:** raising refuses. The first exception reaches the caller and the "
        "remaining implementations are not called."
    ),
    Policy.NOTIFICATION: (
        "**Notification:** an implementation that raises is reported against its plugin; every "
        "other implementation is still called and what the core was doing goes on."
    ),
    Policy.RESOLUTION: (
        "**Resolution (firstresult):** the first implementation returning something other than "
        "None wins and the rest are not called. An exception is not caught: it fails what asked."
    ),
}

#: A banner's rule: a comment of dashes only, above and below the banner's text.
_RULE = re.compile(r"#\s*-{10,}\s*")


@dataclass(frozen=True)
class Hook:
    """One hook specification."""

    function: Callable[..., Any]

    @property
    def name(self) -> str:
        """The hook's name."""
        return self.function.__name__

    @property
    def argnames(self) -> tuple[str, ...]:
        """The arguments the hook passes, in order."""
        return tuple(inspect.signature(self.function).parameters)

    @property
    def line(self) -> int:
        """The line of the specification in its module."""
        return inspect.getsourcelines(self.function)[1]


@dataclass(frozen=True)
class Group:
    """The hooks under one banner comment of the spec module: ``# Title: summary``."""

    title: str
    summary: str
    line: int
    hooks: tuple[Hook, ...] = ()

    @property
    def anchor(self) -> str:
        """The group heading's anchor in the rendered page."""
        return re.sub(r"[^\w\- ]", "", self.title.lower()).replace(" ", "-")


def hooks_of(module: ModuleType) -> list[Hook]:
    """Every hook specification of ``module`` (marked with a policy), in source order."""
    specs = [Hook(f) for f in vars(module).values() if callable(f) and hasattr(f, POLICY_ATTRIBUTE)]
    return sorted(specs, key=lambda hook: hook.line)


def groups_of(module: ModuleType) -> list[Group]:
    """The hooks of ``module`` under the banner comment each follows.

    Raises ValueError when a hook precedes every banner, since it would belong to no group.
    """
    groups = _banners(inspect.getsource(module))
    for hook in hooks_of(module):
        owners = [index for index, group in enumerate(groups) if group.line < hook.line]
        if not owners:
            raise ValueError(f"hook {hook.name} comes before the first group banner of {module.__name__}")
        group = groups[owners[-1]]
        groups[owners[-1]] = replace(group, hooks=(*group.hooks, hook))
    return groups


def _banners(source: str) -> list[Group]:
    """The groups that banner comments open: the comment lines between two rules of dashes."""
    groups = []
    text: list[str] | None = None
    start = 0
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        if _RULE.fullmatch(token.string):
            if text:
                title, _, summary = " ".join(text).partition(":")
                summary = summary.strip()
                groups.append(Group(title.strip(), summary[:1].upper() + summary[1:], start))
                text = None
            else:
                text, start = [], token.start[0]
        elif text is not None:
            text.append(token.string.lstrip("#").strip())
    return groups


def signature(hook: Hook) -> str:
    """``name(arg: Type, ...) -> Result`` as the specification declares it."""
    declared = inspect.signature(hook.function)
    arguments = ", ".join(f"{p.name}: {p.annotation}" for p in declared.parameters.values())
    return f"{hook.name}({arguments}) -> {declared.return_annotation}"


def render_hook(hook: Hook) -> str:
    """One hook's section: heading, signature, policy and docstring."""
    docstring = inspect.getdoc(hook.function)
    if not docstring:
        raise ValueError(f"hook {hook.name} has no docstring")
    return "\n\n".join(
        [
            f"### {hook.name}({', '.join(hook.argnames)})",
            f"`{signature(hook)}`",
            POLICY_LINES[policy_of(hook.function)],
            docstring,
        ]
    )


def render(module: ModuleType = hookspecs) -> str:
    """The whole hook reference for the specifications of ``module``."""
    groups = groups_of(module)
    introduction = inspect.getdoc(module) or ""
    contents = ", ".join(f"[{group.title}](#{group.anchor})" for group in groups)
    parts = [
        "# Hook reference",
        f"<!-- Generated from volant_core/hookspecs.py by `{REGENERATE}`: "
        "edit the docstrings there, not this page. -->",
        introduction,
        "To package, install and test a plugin, read [Writing a plugin](writing-a-plugin.md).",
        f"The hooks by group, in the order of `volant_core/hookspecs.py`: {contents}.",
    ]
    for group in groups:
        parts += [f"## {group.title}", group.summary]
        parts += [render_hook(hook) for hook in group.hooks]
    return "\n\n".join(part for part in parts if part) + "\n"


def main() -> None:
    """Write the hook reference to standard output."""
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
