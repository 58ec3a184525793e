"""What each plugin is handed by the daemon: its :class:`PluginContext`.

A context carries the daemon's resolved settings (command-line overrides
included), the plugin's own validated settings, a state directory of its own,
an event publisher and a logger. Factories of descriptors (launchers, network
modes, device drivers, seed builders), host checks and hooks with a
``context`` argument receive the context of the plugin that registered them.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from volant_core.events import Event, EventType
from volant_core.settings import Settings

#: Directory under the state directory holding each plugin's own state directory.
PLUGIN_STATE_DIR = "plugins"


def _drop(event: Event) -> None:
    """Publisher of contexts built outside a daemon (``volar doctor``): events go to the log only."""
    logging.getLogger("volant.plugins").info("%s: %s", event.type, event.message)


@dataclass(frozen=True)
class PluginContext:
    """One plugin's view of the daemon.

    ``plugin`` is the entry-point name; ``settings`` the daemon's settings;
    ``options`` the plugin's own settings (the model it declared through
    ``volant_settings``, validated; None when it declared none); ``state_dir``
    a directory only this plugin writes (``<state dir>/plugins/<plugin>``,
    created when the daemon starts); ``log`` a logger named after the plugin.
    """

    plugin: str
    settings: Settings
    options: BaseModel | None = None
    publisher: Callable[[Event], object] = field(default=_drop, repr=False)

    @property
    def state_dir(self) -> Path:
        """The plugin's own directory under the daemon's state directory."""
        return self.settings.state_dir / PLUGIN_STATE_DIR / self.plugin

    @property
    def log(self) -> logging.Logger:
        """The plugin's logger (``volant.plugin.<name>``)."""
        return logging.getLogger(f"volant.plugin.{self.plugin}")

    def publish(self, message: str, *, vm: str | None = None, error: bool = False, **data: Any) -> None:
        """Publish an event on the daemon's bus (stored, on the SSE stream, to ``volant_event``):
        ``PLUGIN_ERROR`` when ``error``, else ``PLUGIN_EVENT``; ``data`` carries the plugin's name.
        """
        kind = EventType.PLUGIN_ERROR if error else EventType.PLUGIN_EVENT
        self.publisher(Event(type=kind, name=vm, message=message, data={"plugin": self.plugin, **data}))


def takes_context(function: Callable[..., Any]) -> bool:
    """Whether ``function`` wants a context: it has a positional parameter without a default."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: call it bare
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.kind in positional and p.default is inspect.Parameter.empty for p in parameters)


def call_with_context(function: Callable[..., Any], context: PluginContext) -> Any:
    """Call a factory, check or ``available`` callable with ``context`` if it takes one, else bare.

    Zero-argument factories written for the first plugin API keep working.
    """
    return function(context) if takes_context(function) else function()
