"""What the orchestrator and its parts share: one of each per daemon."""

from __future__ import annotations

from dataclasses import dataclass

from volant_core.orchestrator.admission import Admission
from volant_core.orchestrator.backends import Backends
from volant_core.orchestrator.locks import NamedLocks
from volant_core.orchestrator.transitions import Transitions
from volant_core.orchestrator.views import VMViews
from volant_core.plugins import Plugins
from volant_core.settings import Settings
from volant_core.store import Store


@dataclass(frozen=True)
class OrchestratorContext:
    """The daemon's settings, store and plugins, the per-VM locks, the views of stored VMs, the
    recording of their state changes and the resource limits.
    """

    settings: Settings
    store: Store
    plugins: Plugins
    backends: Backends
    locks: NamedLocks
    views: VMViews
    transitions: Transitions
    admission: Admission
