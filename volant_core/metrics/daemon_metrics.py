"""One daemon's metrics: a registry of its own, what it counts as it goes, what it reads at scrape time.

Counted as it goes (cheap: one increment or one histogram observation):

* from the event bus (:meth:`DaemonMetrics.on_event`): boots (``VM_RUNNING``), crashes
  (``VM_CRASHED``) and the time from a VM's create or start (``VM_CREATED`` or ``VM_STARTING``,
  whichever came first) to ``VM_RUNNING``;
* from the API (:meth:`DaemonMetrics.observe_request`): requests by route template, method and
  status, and the agent proxy's requests and latency.

Read at scrape time (:class:`ScrapeTimeCollector`): VMs by state and hypervisor from the store,
automatic restarts from the orchestrator, open event subscriptions from the bus, and the artifact
cache's size (its directory) and hits (:mod:`volant_core.metrics.cache_hits`).

Each daemon has its own :class:`~prometheus_client.CollectorRegistry`, never the global one: a
process may run several daemons (the tests do).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from volant_core.artifact_cache import ArtifactCache
from volant_core.events import Event, EventType
from volant_core.metrics.cache_hits import hits
from volant_core.orchestrator import Orchestrator
from volant_core.vm import VMStatus

#: Route label of requests answered before routing (refused by access control, CORS preflights)
#: or matching no route: raw paths would make one series per path a client invents.
UNROUTED = "unrouted"
#: Method label values; any other method is counted as ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Boot duration buckets (seconds): a host process runs in a fraction of a second, a TCG guest in a minute.
BOOT_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
#: Agent proxy latency buckets (seconds), up to kestrel's answer starting.
AGENT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: Events that end a boot without the VM running: its start time is dropped.
_BOOT_ENDS = frozenset({EventType.VM_CRASHED, EventType.VM_STOPPED, EventType.VM_DELETED})


class DaemonMetrics:
    """The metrics of one daemon running ``orchestrator``; ``agent_route`` is the route template of
    the agent proxy and ``cache_dir`` the artifact cache directory.
    """

    def __init__(self, orchestrator: Orchestrator, agent_route: str, cache_dir: Path) -> None:
        self.registry = CollectorRegistry()
        self._agent_route = agent_route
        self._boots = Counter("volant_vm_boots", "VMs that reached running", registry=self.registry)
        self._crashes = Counter("volant_vm_crashes", "VMs that crashed", registry=self.registry)
        self._boot_seconds = Histogram(
            "volant_vm_boot_seconds",
            "Seconds from a VM's create or start to running",
            buckets=BOOT_BUCKETS,
            registry=self.registry,
        )
        self._requests = Counter(
            "volant_api_requests",
            "API requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._agent_requests = Counter(
            "volant_agent_proxy_requests",
            "Requests relayed to guests' agents, by status",
            ["status"],
            registry=self.registry,
        )
        self._agent_seconds = Histogram(
            "volant_agent_proxy_seconds",
            "Seconds from a proxied request to the start of the agent's answer",
            buckets=AGENT_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(ScrapeTimeCollector(orchestrator, cache_dir))
        self._lock = threading.Lock()
        self._booting: dict[str, float] = {}  # VM name -> time.monotonic() of its create or start

    def on_event(self, event: Event) -> None:
        """Count a boot or a crash, and time boots (an event bus listener)."""
        if event.name is None:
            return
        if event.type in (EventType.VM_CREATED, EventType.VM_STARTING):
            with self._lock:
                self._booting.setdefault(event.name, time.monotonic())
        elif event.type == EventType.VM_RUNNING:
            self._boots.inc()
            with self._lock:
                started = self._booting.pop(event.name, None)
            if started is not None:  # a VM adopted after a daemon restart has no start here
                self._boot_seconds.observe(time.monotonic() - started)
        elif event.type in _BOOT_ENDS:
            if event.type == EventType.VM_CRASHED:
                self._crashes.inc()
            with self._lock:
                self._booting.pop(event.name, None)

    def observe_request(self, route: str | None, method: str, status: int, seconds: float) -> None:
        """Count an answered API request (``route`` None when it was not routed); a request to the
        agent proxy also counts as a proxied one, with its latency.
        """
        self._requests.labels(route or UNROUTED, method if method in METHODS else "other", str(status)).inc()
        if route == self._agent_route:
            self._agent_requests.labels(str(status)).inc()
            self._agent_seconds.observe(seconds)

    def exposition(self) -> bytes:
        """Every metric, in the Prometheus text format."""
        return generate_latest(self.registry)


class ScrapeTimeCollector(Collector):
    """The metrics read when Prometheus scrapes: nothing is kept between scrapes."""

    def __init__(self, orchestrator: Orchestrator, cache_dir: Path) -> None:
        self._orchestrator = orchestrator
        self._cache_dir = cache_dir

    def collect(self) -> Iterator[Metric]:
        """VMs by state and hypervisor, automatic restarts, event subscribers, the artifact cache."""
        yield self._vms()
        restarts = CounterMetricFamily(
            "volant_vm_restarts", "Automatic restarts begun (restart policy, on_unhealthy: restart)"
        )
        restarts.add_metric([], self._orchestrator.automatic_restarts)
        yield restarts
        yield GaugeMetricFamily(
            "volant_event_subscribers",
            "Open event subscriptions (SSE streams)",
            value=self._orchestrator.events.subscriber_count,
        )
        entries = ArtifactCache(self._cache_dir).entries()  # what `volar image cache ls` lists
        size = sum(entry.size for entry in entries)
        yield GaugeMetricFamily("volant_artifact_cache_bytes", "Bytes in the artifact cache", value=size)
        yield GaugeMetricFamily(
            "volant_artifact_cache_files", "Artifacts and partial downloads in the cache", value=len(entries)
        )
        yield CounterMetricFamily(
            "volant_artifact_cache_hits",
            "Artifacts served from the cache without a download or a copy",
            value=hits(self._cache_dir),
        )

    def _vms(self) -> GaugeMetricFamily:
        """Every state for each hypervisor in use or the default one (0 included, so a series
        drops to 0 instead of vanishing).
        """
        counts: dict[tuple[str, str], int] = {}
        hypervisors = {self._orchestrator.settings.hypervisor}
        for vm in self._orchestrator.store.vms.list():
            hypervisors.add(vm.hypervisor)
            counts[vm.status, vm.hypervisor] = counts.get((vm.status, vm.hypervisor), 0) + 1
        family = GaugeMetricFamily(
            "volant_vms", "VMs by state and hypervisor", labels=["state", "hypervisor"]
        )
        for hypervisor in sorted(hypervisors):
            for state in VMStatus:
                family.add_metric([state.value, hypervisor], counts.get((state.value, hypervisor), 0))
        return family
