"""Plugin contexts for plugin tests, as the daemon builds them (:class:`PluginContext`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from volant_core.context import PluginContext
from volant_core.settings import load_settings


def plugin_context(plugin: str, state_dir: Path, options: BaseModel | None = None) -> PluginContext:
    """The context of plugin ``plugin`` in a daemon whose state directory is ``state_dir`` (the
    plugin's own directory lies under it), with ``options`` as its validated settings.
    """
    return PluginContext(plugin, load_settings({}, state_dir=state_dir), options)
