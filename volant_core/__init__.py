"""Volant: plugin-first microVM orchestration.

Plugin authors need two names from here: :data:`hookimpl`, the decorator that
marks hook implementations, and :data:`PROJECT_NAME`. The hooks themselves are
specified and documented in :mod:`volant_core.hookspecs`.

Importing this package imports nothing else: every ``volar`` command passes through it, and
most need neither pluggy nor the hook specifications (``hookimpl`` is made on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pluggy

__version__ = "0.1.0"

#: The pluggy project name of Volant's hooks (hook implementations are marked with it).
PROJECT_NAME = "volant"

#: Decorator marking a function as the implementation of a Volant hook.
hookimpl: pluggy.HookimplMarker


def __getattr__(name: str) -> Any:
    """Make :data:`hookimpl` when it is first asked for (importing pluggy only then)."""
    if name == "hookimpl":
        import pluggy

        marker = pluggy.HookimplMarker(PROJECT_NAME)
        globals()["hookimpl"] = marker
        return marker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PROJECT_NAME", "__version__", "hookimpl"]
