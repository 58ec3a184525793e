"""Which installed plugins put VMs on a host bridge: those whose settings declare a ``bridge`` field.

``volar setup`` writes their ``VOLANT_<PLUGIN>_BRIDGE`` into volantd's unit (only theirs: volantd
refuses variables of plugins that are not installed), and ``volar doctor`` checks their bridges.
"""

from __future__ import annotations

from volant_core.errors import ValidationError
from volant_core.plugin_settings import resolve_options, variable_prefix
from volant_core.plugins import Plugins
from volant_core.settings import Settings

#: The settings field through which a plugin is told its bridge.
BRIDGE_FIELD = "bridge"


def bridge_plugins(plugins: Plugins) -> list[str]:
    """Names of the loaded plugins with a ``bridge`` setting, sorted."""
    return sorted(
        name
        for name in plugins.loaded()
        if (model := plugins.registries.settings.get(name)) is not None and BRIDGE_FIELD in model.model_fields
    )


def bridge_variables(plugins: Plugins) -> tuple[str, ...]:
    """``VOLANT_<PLUGIN>_BRIDGE`` of each plugin with a bridge setting."""
    return tuple(variable_prefix(name) + BRIDGE_FIELD.upper() for name in bridge_plugins(plugins))


def configured_bridges(plugins: Plugins, settings: Settings) -> dict[str, str]:
    """Plugin -> the bridge its settings in ``settings`` name (skipping plugins with invalid settings:
    ``volar doctor`` reports those itself).
    """
    found = {}
    for name in bridge_plugins(plugins):
        try:
            model = plugins.registries.settings[name]
            options = resolve_options(name, model, settings.plugin_env, plugins.loaded())
        except ValidationError:
            continue
        found[name] = str(getattr(options, BRIDGE_FIELD))
    return found
