"""Volant: plugin-first microVM orchestration.

Plugin authors need two names from here: :data:`hookimpl`, the decorator that
marks hook implementations, and :data:`PROJECT_NAME`. The hooks themselves are
specified and documented in :mod:`volant_core.hookspecs`.
"""

import pluggy

from volant_core.hookspecs import PROJECT_NAME

__version__ = "0.1.0"

#: Decorator marking a function as the implementation of a Volant hook.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "__version__", "hookimpl"]
