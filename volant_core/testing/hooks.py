"""A recorder of hook calls, for tests of plugins and of the core's use of them.

:class:`HookRecorder` watches a daemon's hook caller (``daemon.plugins.calls.add_monitor``) and
keeps every hook call the core makes (whether or not a plugin implements the hook) and every
implementation's result, in order::

    recorder = HookRecorder.attach(running.daemon.plugins)
    ...
    assert recorder.hooks() == ["volant_vm_validate", "volant_prepare_launch", ...]
    assert recorder.plugins_called("volant_vm_stopped") == ["my-plugin", "core"]
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from volant_core.plugins import Plugins


@dataclass(frozen=True)
class HookCall:
    """One call of a hook: its name and the arguments the core passed."""

    hook: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class HookResult:
    """One implementation's answer: the hook, the plugin whose implementation ran, the arguments the
    core passed and what it returned.
    """

    hook: str
    plugin: str
    kwargs: dict[str, Any]
    result: Any


class HookRecorder:
    """Keeps the hook calls of one :class:`~volant_core.plugins.Plugins` (thread-safe)."""

    def __init__(self) -> None:
        self._calls: list[HookCall] = []
        self._results: list[HookResult] = []
        self._lock = threading.Lock()

    @classmethod
    def attach(cls, plugins: Plugins) -> HookRecorder:
        """A recorder watching ``plugins`` from now on."""
        recorder = cls()
        plugins.calls.add_monitor(recorder)
        return recorder

    def hook_called(self, hook: str, kwargs: dict[str, Any]) -> None:
        """Record a hook call (the :class:`~volant_core.hookcall.HookMonitor` interface)."""
        with self._lock:
            self._calls.append(HookCall(hook, dict(kwargs)))

    def implementation_returned(self, hook: str, plugin: str, kwargs: dict[str, Any], result: Any) -> None:
        """Record an implementation's result (the :class:`~volant_core.hookcall.HookMonitor` interface)."""
        with self._lock:
            self._results.append(HookResult(hook, plugin, dict(kwargs), result))

    @property
    def calls(self) -> list[HookCall]:
        """Every hook call recorded so far, oldest first."""
        with self._lock:
            return list(self._calls)

    def hooks(self, *, ignore: tuple[str, ...] = ()) -> list[str]:
        """The names of the hooks called, in order, leaving out those in ``ignore``."""
        return [call.hook for call in self.calls if call.hook not in ignore]

    def results(self, hook: str) -> list[HookResult]:
        """What the implementations of ``hook`` returned, in call order."""
        with self._lock:
            return [result for result in self._results if result.hook == hook]

    def plugins_called(self, hook: str) -> list[str]:
        """The plugins whose implementation of ``hook`` returned, in call order."""
        return [result.plugin for result in self.results(hook)]

    def vms(self, hook: str) -> list[str]:
        """The names of the VMs (``vm`` argument) ``hook`` was called for, in call order."""
        return [call.kwargs["vm"].name for call in self.calls if call.hook == hook and "vm" in call.kwargs]
