"""The one caller of Volant hooks: each hook called by the policy its specification declares.

Implementations are taken in pluggy's own order (``tryfirst`` first, then the
most recently registered plugin back to the first, ``trylast`` last), each
given only the arguments it names, and ``context`` as its own plugin's
:class:`~volant_core.context.PluginContext`. The policies
(:class:`volant_core.hookspecs.Policy`):

* :meth:`HookCaller.validate` lets the first exception through and stops there;
* :meth:`HookCaller.notify` isolates: an implementation that raises is logged,
  recorded on its plugin and published as ``PLUGIN_ERROR``, and the others are
  still called;
* :meth:`HookCaller.resolve` returns the first non-None answer;
* :meth:`HookCaller.per_plugin` yields each plugin's raw answer (the
  registration pass type-checks them).

Set ``VOLANT_TRACE_HOOKS=1`` to log every call; :meth:`HookCaller.add_monitor`
lets a test see every call (:class:`volant_core.testing.hooks.HookRecorder`).
Registration hooks are called by the registration pass
(:func:`volant_core.registry.register_all`) through :meth:`HookCaller.call_one`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

from volant_core.errors import describe_exception
from volant_core.hookspecs import Policy, policy_of

if TYPE_CHECKING:
    from volant_core.plugins import Plugins

log = logging.getLogger(__name__)

#: Environment variable that makes every hook call logged (at INFO).
TRACE_ENV = "VOLANT_TRACE_HOOKS"


class HookMonitor(Protocol):
    """Sees the hook calls of a :class:`HookCaller` (see :meth:`HookCaller.add_monitor`)."""

    def hook_called(self, hook: str, kwargs: dict[str, Any]) -> None:
        """``hook`` is being called with ``kwargs`` (whether or not any plugin implements it)."""

    def implementation_returned(self, hook: str, plugin: str, kwargs: dict[str, Any], result: Any) -> None:
        """The implementation of ``plugin`` returned ``result`` (not called when it raised)."""


class HookCaller:
    """Calls the hooks of one :class:`~volant_core.plugins.Plugins` by their declared policies."""

    def __init__(self, plugins: Plugins) -> None:
        self._plugins = plugins
        self._monitors: list[HookMonitor] = []
        self._trace = bool(os.environ.get(TRACE_ENV))

    def add_monitor(self, monitor: HookMonitor) -> None:
        """Tell ``monitor`` of every hook call and every implementation's result from now on."""
        self._monitors.append(monitor)

    def implementations(self, hook: str) -> list[tuple[str, pluggy.HookImpl]]:
        """``(plugin name, implementation)`` of ``hook`` in the order pluggy calls them."""
        caller: pluggy.HookCaller = getattr(self._plugins.manager.hook, hook)
        return [(self._plugins.plugin_name(impl.plugin), impl) for impl in reversed(caller.get_hookimpls())]

    def has_listeners(self, hook: str) -> bool:
        """Whether calling ``hook`` reaches anyone: an implementation, or a monitor (which sees every
        call). A caller whose arguments cost work to build (a VM's view read from the store) asks
        first, and skips a call nobody would receive.
        """
        caller: pluggy.HookCaller = getattr(self._plugins.manager.hook, hook)
        return bool(self._monitors) or bool(caller.get_hookimpls())

    def per_plugin(self, hook: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Call every implementation, yielding ``(plugin name, result)``; exceptions propagate."""
        self._announce(hook, kwargs)
        for owner, impl in self.implementations(hook):
            yield owner, self.call_one(hook, owner, impl, kwargs)

    def validate(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of a validation hook; the first exception stops the call and
        reaches the caller. The results that are not None, each with the name of the plugin that
        returned it, in call order.
        """
        self._expect(hook, Policy.VALIDATION)
        return [(owner, result) for owner, result in self.per_plugin(hook, **kwargs) if result is not None]

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call every implementation of a notification hook, each isolated from the others' errors
        (the failure event names the VM of a ``vm`` argument).
        """
        self._expect(hook, Policy.NOTIFICATION)
        self._announce(hook, kwargs)
        about = getattr(kwargs.get("vm"), "name", None)
        for owner, impl in self.implementations(hook):
            try:
                self.call_one(hook, owner, impl, kwargs)
            except Exception as err:  # a plugin's bug never breaks what the core is doing
                message = f"{hook} raised {describe_exception(err)}"
                # a failing volant_event is not announced with another event: it would be called again
                self._plugins.publish_failure(owner, message, vm=about, announce=hook != "volant_event")

    def resolve(self, hook: str, **kwargs: Any) -> Any:
        """The first non-None answer of a resolution hook, or None when every implementation abstains."""
        self._expect(hook, Policy.RESOLUTION)
        self._announce(hook, kwargs)
        for owner, impl in self.implementations(hook):
            result = self.call_one(hook, owner, impl, kwargs)
            if result is not None:
                return result
        return None

    def call_one(self, hook: str, owner: str, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
        """Call the implementation ``impl`` of ``hook`` (registered by ``owner``) with the arguments it
        names; ``context`` is its plugin's.
        """
        arguments = {name: self._argument(name, owner, kwargs) for name in impl.argnames}
        if self._trace:
            log.info("hook %s -> plugin %s", hook, owner)
        result = impl.function(**arguments)
        for monitor in self._monitors:
            monitor.implementation_returned(hook, owner, kwargs, result)
        return result

    def _announce(self, hook: str, kwargs: dict[str, Any]) -> None:
        for monitor in self._monitors:
            monitor.hook_called(hook, kwargs)

    def _argument(self, name: str, owner: str, kwargs: dict[str, Any]) -> Any:
        if name == "context" and "context" not in kwargs:
            return self._plugins.context(owner)
        return kwargs[name]

    def _expect(self, hook: str, policy: Policy) -> None:
        spec = getattr(self._plugins.manager.hook, hook).spec
        if spec is None or policy_of(spec.function) != policy:
            raise TypeError(f"{hook} is not a {policy} hook")
