"""Assembling volantd: settings -> store, plugins, registries, catalog, orchestrator, API."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from volant_core.api.app import ApiDeps, create_app
from volant_core.api.server import ApiServer, ServerLimits
from volant_core.confinement import ArtifactPolicy
from volant_core.events import Event, EventBus
from volant_core.manifest import Manifest
from volant_core.orchestrator import Orchestrator
from volant_core.orchestrator.deployments import Deployments
from volant_core.plugins import Plugins, load_plugins
from volant_core.runtimes import RuntimeCatalog
from volant_core.settings import IMAGES_DIR, Settings
from volant_core.store import Store, open_store

log = logging.getLogger(__name__)


@dataclass
class Daemon:
    """A wired volantd: every collaborator, ready to serve."""

    settings: Settings
    store: Store
    plugins: Plugins
    catalog: RuntimeCatalog
    orchestrator: Orchestrator
    deployments: Deployments
    server: ApiServer

    def start(self) -> None:
        """Re-adopt surviving VMs, start reconciling deployments, then serve the API."""
        self.orchestrator.recover()
        self.deployments.start()
        self.server.start()
        host, port = self.server.address
        log.info("volantd listening on http://%s:%d", host, port)

    def stop(self) -> None:
        """End the event streams, stop serving; running VMs keep running."""
        self.orchestrator.events.close()
        self.server.stop()
        self.deployments.stop()
        self.orchestrator.shutdown()
        self.store.close()


#: The events table is trimmed to ``events_keep`` rows once every this many events.
PRUNE_EVENTS_EVERY = 100


def _persist_event(store: Store, keep: int, event: Event) -> int:
    """Store ``event`` and return its id; now and then drop all but the newest ``keep`` events."""
    record = store.events.append(event.type, event.to_dict(), vm_name=event.name)
    if record.id % PRUNE_EVENTS_EVERY == 0:
        store.events.prune(keep)
    return record.id


def build_daemon(settings: Settings, *, plugins: Plugins | None = None) -> Daemon:
    """Load the plugins, validate their settings, open the state and wire the daemon (not yet serving).

    Raises :class:`~volant_core.errors.ValidationError` naming the variable of an invalid plugin
    setting before anything is opened.
    """
    plugins = plugins or load_plugins()
    bus: EventBus  # made once the store is open; plugins publish only after that
    orchestrator: Orchestrator
    plugins.configure(settings, publisher=lambda event: bus.publish(event))
    for directory in (settings.state_dir, settings.runtime_dir, settings.log_dir, settings.cache_dir):
        directory.mkdir(parents=True, exist_ok=True)
    (settings.state_dir / IMAGES_DIR).mkdir(exist_ok=True)
    for name in plugins.loaded():
        plugins.context(name).state_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.db_path)

    def in_use(runtime: str) -> list[str]:
        return [vm.name for vm in store.vms.list() if vm.plugin == runtime]

    artifacts = ArtifactPolicy.from_settings(settings)

    def check_manifest(manifest: Manifest) -> None:
        artifacts.check_all(manifest.artifacts())
        orchestrator.check_manifest(manifest)

    catalog = RuntimeCatalog(store, plugins, in_use, check=check_manifest)
    bus = EventBus(persist=functools.partial(_persist_event, store, settings.events_keep))
    orchestrator = Orchestrator(settings, store, plugins, catalog, bus)
    deployments = Deployments(store, bus, orchestrator, interval=settings.reconcile_interval)
    bus.add_listener(deployments.on_event)
    bus.add_listener(plugins.publish)
    app = create_app(
        ApiDeps(
            orchestrator=orchestrator,
            catalog=catalog,
            plugins=plugins,
            deployments=deployments,
            settings=settings,
        )
    )
    for info in plugins.info.values():
        if info.status == "failed":
            log.warning(
                "plugin %s (%s %s) failed: %s", info.name, info.distribution, info.version, info.error
            )
    server = ApiServer(app, *settings.listen_address, ServerLimits.from_settings(settings))
    return Daemon(settings, store, plugins, catalog, orchestrator, deployments, server)
