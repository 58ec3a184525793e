"""Plugin discovery: stevedore finds and imports, pluggy calls.

Every installed distribution that declares an entry point in the
``volant.plugins`` group is imported with stevedore and registered with one
:class:`pluggy.PluginManager`. A plugin that fails to import, or whose hook
implementations do not match :mod:`volant_core.hookspecs`, is recorded with
its error (and its distribution name and version) instead of taking the
daemon down. ``VOLANT_DISABLE_PLUGINS=a,b`` skips plugins by entry-point name
without importing them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import importlib_metadata
import pluggy
from stevedore import ExtensionManager

from volant_core import builtins, hookspecs
from volant_core.hookspecs import PROJECT_NAME

#: Entry-point group a plugin distribution declares.
ENTRY_POINT_GROUP = "volant.plugins"
#: Environment variable listing plugin names to skip (comma separated).
DISABLE_ENV = "VOLANT_DISABLE_PLUGINS"
#: Name under which the core's own default implementations are registered.
CORE_PLUGIN_NAME = "core"


@dataclass(frozen=True)
class PluginInfo:
    """What the daemon knows about one plugin: where it comes from and whether it works."""

    name: str
    distribution: str
    version: str
    module: str
    status: str  # "loaded" | "failed" | "disabled"
    error: str | None = None
    hooks: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view for the API and the CLI."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "status": self.status,
            "error": self.error,
            "hooks": list(self.hooks),
        }


@dataclass
class PluginHost:
    """The plugin manager plus the record of every plugin seen, working or not."""

    manager: pluggy.PluginManager
    plugins: dict[str, PluginInfo] = field(default_factory=dict)

    @property
    def hook(self) -> Any:
        """Shortcut to ``manager.hook`` for calling lifecycle hooks."""
        return self.manager.hook

    def fail(self, name: str, error: str) -> None:
        """Mark a registered plugin as failed (e.g. a registration hook raised) and unregister it."""
        info = self.plugins[name]
        self.plugins[name] = PluginInfo(
            info.name, info.distribution, info.version, info.module, "failed", error
        )
        plugin = self.manager.get_plugin(name)
        if plugin is not None:
            self.manager.unregister(plugin)

    def call_each(self, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Call one hook plugin by plugin, yielding ``(plugin name, result)``.

        A plugin whose implementation raises is marked failed (and
        unregistered) instead of breaking the call for the others.
        """
        for impl in getattr(self.hook, hook_name).get_hookimpls():  # registration order: the core first
            owner = self.plugin_name(impl.plugin)
            try:
                result = impl.function(*(kwargs[name] for name in impl.argnames))
            except Exception as err:  # a broken plugin must not take the daemon down
                self.fail(owner, f"{hook_name} raised {type(err).__name__}: {err}")
                continue
            yield owner, result

    def plugin_name(self, plugin: object) -> str:
        """The registered name of a plugin object."""
        return self.manager.get_name(plugin) or repr(plugin)


def disabled_from_env(environ: dict[str, str] | None = None) -> frozenset[str]:
    """Plugin names listed in ``VOLANT_DISABLE_PLUGINS``."""
    raw = (environ if environ is not None else os.environ).get(DISABLE_ENV, "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


class _EntryPointManager(ExtensionManager):  # type: ignore[misc]
    """stevedore manager that reads entry points through importlib-metadata.

    Going through importlib-metadata keeps each entry point's distribution (for
    the name and version we report), sees installs and uninstalls at once, and
    writes no cache file outside Volant's own directories.
    """

    def __init__(self, skip: frozenset[str], on_failure: Any) -> None:
        self._skip = skip
        super().__init__(ENTRY_POINT_GROUP, invoke_on_load=False, on_load_failure_callback=on_failure)

    def list_entry_points(self) -> list[Any]:
        """Every entry point of the group except the skipped names, in a stable order."""
        eps = importlib_metadata.entry_points(group=self.namespace)
        return sorted((ep for ep in eps if ep.name not in self._skip), key=lambda ep: ep.name)


def _dist_of(ep: Any) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ("unknown", "unknown")
    return (dist.name, dist.version)


def _spec_errors(manager: pluggy.PluginManager, plugin: object) -> list[str]:
    """Hook implementations of ``plugin`` that match no hook specification."""
    errors = []
    for caller in manager.get_hookcallers(plugin) or []:
        if caller.spec is None:
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and not impl.optionalhook:
                    errors.append(
                        f"unknown hook {caller.name!r}: no such Volant hook (see volant_core.hookspecs)"
                    )
    return errors


def _hook_names(manager: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    return tuple(sorted(caller.name for caller in manager.get_hookcallers(plugin) or []))


def load_plugins(
    disabled: Iterable[str] | None = None, *, extra: Iterable[tuple[str, object]] = ()
) -> PluginHost:
    """Build the plugin manager: core defaults, then every entry-point plugin, then ``extra``.

    ``disabled`` defaults to ``VOLANT_DISABLE_PLUGINS``. ``extra`` registers
    in-process plugins (used by tests and embedders) as ``(name, module)``.
    """
    skip = frozenset(disabled) if disabled is not None else disabled_from_env()
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    host = PluginHost(manager)

    manager.register(builtins, name=CORE_PLUGIN_NAME)
    host.plugins[CORE_PLUGIN_NAME] = PluginInfo(
        CORE_PLUGIN_NAME,
        "volant-core",
        _core_version(),
        builtins.__name__,
        "loaded",
        hooks=_hook_names(manager, builtins),
    )

    def on_failure(_mgr: object, ep: Any, err: BaseException) -> None:
        dist, version = _dist_of(ep)
        host.plugins[ep.name] = PluginInfo(
            ep.name, dist, version, ep.value, "failed", f"{type(err).__name__}: {err}"
        )

    extensions = _EntryPointManager(skip, on_failure)
    for ext in extensions:
        dist, version = _dist_of(ext.entry_point)
        _register(host, ext.name, ext.plugin, dist, version, ext.entry_point.value)
    for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in skip:
            dist, version = _dist_of(ep)
            host.plugins[ep.name] = PluginInfo(ep.name, dist, version, ep.value, "disabled")
    for name, module in extra:
        _register(host, name, module, "in-process", "", getattr(module, "__name__", repr(module)))
    return host


def _register(host: PluginHost, name: str, plugin: object, dist: str, version: str, module: str) -> None:
    """Register one plugin, recording instead of raising when it does not fit the hook specs."""
    if name in host.plugins:
        host.plugins[f"{name}@{dist}"] = PluginInfo(
            name,
            dist,
            version,
            module,
            "failed",
            f"plugin name {name!r} is already used by {host.plugins[name].distribution}",
        )
        return
    try:
        host.manager.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as err:
        host.plugins[name] = PluginInfo(name, dist, version, module, "failed", str(err))
        return
    errors = _spec_errors(host.manager, plugin)
    hooks = _hook_names(host.manager, plugin)
    host.plugins[name] = PluginInfo(name, dist, version, module, "loaded", hooks=hooks)
    if errors:
        host.fail(name, "; ".join(errors))


def _core_version() -> str:
    from volant_core import __version__

    return __version__
