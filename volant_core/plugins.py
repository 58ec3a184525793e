"""Plugin discovery: stevedore finds and imports, pluggy checks and orders, one registration pass.

Every installed distribution that declares an entry point in the ``volant.plugins`` group is
imported with stevedore and registered with one :class:`pluggy.PluginManager`. Then each plugin's
registration hooks are called in one pass, all or nothing (:mod:`volant_core.registry`): a plugin
that fails to import, implements an unknown hook or a hook wrapper, raises in a registration hook,
returns the wrong type or a name taken already is recorded as ``failed`` with its error (and its
distribution and version), keeps nothing it registered, and is never called again; it never takes
the daemon down. ``VOLANT_DISABLE_PLUGINS=a,b`` skips plugins by entry-point name without
importing them. How the other hooks are called is :mod:`volant_core.hookcall`'s job.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import importlib_metadata
import pluggy
from stevedore import ExtensionManager

from volant_core import builtins, hookspecs
from volant_core.context import PluginContext
from volant_core.errors import ValidationError, describe_exception
from volant_core.events import Event
from volant_core.hookcall import HookCaller
from volant_core.hookspecs import PROJECT_NAME
from volant_core.plugin_settings import refuse_misspellings, resolve_options, settings_of
from volant_core.registry import Registries, register_all
from volant_core.settings import ENVIRONMENT, Settings

log = logging.getLogger(__name__)

#: Entry-point group a plugin distribution declares.
ENTRY_POINT_GROUP = "volant.plugins"
#: Environment variable listing plugin names to skip (comma separated).
DISABLE_ENV = "VOLANT_DISABLE_PLUGINS"
#: Name under which the core's own default implementations are registered.
CORE_PLUGIN_NAME = "core"
#: Most hook errors a plugin's record keeps (the newest).
KEEP_ERRORS = 10


@dataclass(frozen=True)
class PluginInfo:
    """What the daemon knows about one plugin: where it comes from and whether it works.

    ``status`` is ``loaded``; ``degraded`` (loaded, but a notification hook or a release raised:
    ``errors`` says which, newest last); ``failed`` (out: ``error`` says why); or ``disabled``.
    """

    name: str
    distribution: str
    version: str
    module: str
    status: str
    error: str | None = None
    hooks: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view for the API and the CLI."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "status": self.status,
            "error": self.error or (self.errors[-1] if self.errors else None),
            "hooks": list(self.hooks),
            "errors": list(self.errors),
        }


@dataclass
class Plugins:
    """The plugin manager, the record of every plugin seen (working or not), what they registered,
    and, once :meth:`configure` ran, each plugin's context.
    """

    manager: pluggy.PluginManager
    info: dict[str, PluginInfo] = field(default_factory=dict)
    registries: Registries = field(default_factory=Registries)
    contexts: dict[str, PluginContext] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.calls = HookCaller(self)

    def fail(self, name: str, error: str) -> None:
        """Mark a plugin failed: unregister it and forget everything it registered."""
        self.info[name] = replace(self.info[name], status="failed", error=error)
        plugin = self.manager.get_plugin(name)
        if plugin is not None:
            self.manager.unregister(plugin)
        self.registries.drop(name)

    def record_error(self, name: str, error: str) -> None:
        """Note that plugin ``name`` raised in a notification hook or a release: ``degraded``."""
        info = self.info.get(name)
        if info is None or info.status == "failed":
            return
        self.info[name] = replace(info, status="degraded", errors=(*info.errors, error)[-KEEP_ERRORS:])

    def plugin_name(self, plugin: object) -> str:
        """The registered name of a plugin object."""
        return self.manager.get_name(plugin) or repr(plugin)

    def loaded(self) -> list[str]:
        """Names of the plugins that are registered (loaded or degraded), the core first."""
        return [name for name, info in self.info.items() if info.status in ("loaded", "degraded")]

    def configure(self, settings: Settings, publisher: Any = None, *, strict: bool = True) -> dict[str, str]:
        """Build every registered plugin's context from ``settings`` (``publisher`` delivers their
        events); validate each plugin's own settings.

        Raises :class:`~volant_core.errors.ValidationError` naming the variable of the first invalid
        plugin setting, or of a variable spelled like a setting that nothing reads
        (:func:`~volant_core.plugin_settings.refuse_misspellings`, the core's problem): the daemon
        must not start with it. With ``strict`` False (``volar doctor``), returns the problems by
        plugin instead, those plugins' contexts having no options.
        """
        contexts = {}
        problems = {}
        try:  # first: a misspelt variable may be why a required setting is missing
            refuse_misspellings(settings.plugin_env, self.variables(), self.info)
        except ValidationError as err:
            if strict:
                raise
            problems[CORE_PLUGIN_NAME] = err.message
        for name in self.loaded():
            options = None
            try:
                options = resolve_options(
                    name, self.registries.settings.get(name), settings.plugin_env, self.loaded()
                )
            except ValidationError as err:
                if strict:
                    raise
                problems.setdefault(name, err.message)
            extra = {"publisher": publisher} if publisher is not None else {}
            contexts[name] = PluginContext(plugin=name, settings=settings, options=options, **extra)
        self.contexts = contexts
        return problems

    def variables(self) -> list[str]:
        """Every ``VOLANT_*`` variable volantd reads: its own, then the loaded plugins' settings."""
        declared = self.registries.settings.items()
        return [*ENVIRONMENT, *(s.variable for name, model in declared for s in settings_of(name, model))]

    def context(self, name: str) -> PluginContext:
        """The context of plugin ``name`` (after :meth:`configure`)."""
        try:
            return self.contexts[name]
        except KeyError:
            raise RuntimeError(
                f"plugin {name!r} has no context: Plugins.configure() was not called"
            ) from None

    def publish_failure(
        self, name: str, message: str, vm: str | None = None, *, announce: bool = True
    ) -> None:
        """Record a plugin's failure (``degraded``), log it and, if ``announce``, publish it as a
        ``PLUGIN_ERROR`` event.
        """
        self.record_error(name, message)
        log.error("plugin %s: %s", name, message)
        if announce and name in self.contexts:
            self.contexts[name].publish(message, vm=vm, error=True)

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every ``volant_event`` implementation (isolated)."""
        self.calls.notify("volant_event", event=event)


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
    """Hook implementations of ``plugin`` that match no hook specification, or are wrappers."""
    errors = []
    for caller in manager.get_hookcallers(plugin) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            if caller.spec is None and not impl.optionalhook:
                errors.append(
                    f"unknown hook {caller.name!r}: no such Volant hook (see volant_core.hookspecs)"
                )
            elif impl.hookwrapper or impl.wrapper:
                errors.append(f"{caller.name}: hook wrappers are not supported; implement the hook itself")
    return errors


def _hook_names(manager: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    return tuple(sorted(caller.name for caller in manager.get_hookcallers(plugin) or []))


def load_plugins(
    disabled: Iterable[str] | None = None, *, extra: Iterable[tuple[str, object]] = ()
) -> Plugins:
    """Load the core defaults, every entry-point plugin, then ``extra``; run the registration pass.

    ``disabled`` defaults to ``VOLANT_DISABLE_PLUGINS``. ``extra`` registers
    in-process plugins (used by tests and embedders) as ``(name, module)``.
    """
    skip = frozenset(disabled) if disabled is not None else disabled_from_env()
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    plugins = Plugins(manager)
    _register(plugins, CORE_PLUGIN_NAME, builtins, "volant-core", _core_version(), builtins.__name__)

    def on_failure(_mgr: object, ep: Any, err: BaseException) -> None:
        dist, version = _dist_of(ep)
        plugins.info[ep.name] = PluginInfo(
            ep.name, dist, version, ep.value, "failed", describe_exception(err)
        )

    for ext in _EntryPointManager(skip, on_failure):
        dist, version = _dist_of(ext.entry_point)
        _register(plugins, ext.name, ext.plugin, dist, version, ext.entry_point.value)
    for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in skip:
            dist, version = _dist_of(ep)
            plugins.info[ep.name] = PluginInfo(ep.name, dist, version, ep.value, "disabled")
    for name, module in extra:
        _register(plugins, name, module, "in-process", "", getattr(module, "__name__", repr(module)))
    register_all(plugins)
    return plugins


def _register(plugins: Plugins, name: str, plugin: object, dist: str, version: str, module: str) -> None:
    """Register one plugin, recording instead of raising when it does not fit the hook specs."""
    if name in plugins.info:
        plugins.info[f"{name}@{dist}"] = PluginInfo(
            name,
            dist,
            version,
            module,
            "failed",
            f"plugin name {name!r} is already used by {plugins.info[name].distribution}",
        )
        return
    try:
        plugins.manager.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as err:
        plugins.info[name] = PluginInfo(name, dist, version, module, "failed", str(err))
        return
    errors = _spec_errors(plugins.manager, plugin)
    plugins.info[name] = PluginInfo(
        name, dist, version, module, "loaded", hooks=_hook_names(plugins.manager, plugin)
    )
    if errors:
        plugins.fail(name, "; ".join(errors))


def _core_version() -> str:
    from volant_core import __version__

    return __version__
