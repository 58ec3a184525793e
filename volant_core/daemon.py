"""Assembling volantd: settings -> store, plugins, registries, catalog, orchestrator, API."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from volant_core.api.app import ApiDeps, create_app
from volant_core.api.server import ApiServer
from volant_core.events import Event, EventBus
from volant_core.orchestrator import Orchestrator
from volant_core.plugins import PluginHost, load_plugins
from volant_core.registry import Registries, build_registries
from volant_core.runtimes import RuntimeCatalog
from volant_core.settings import Settings
from volant_core.store import Store, open_store

log = logging.getLogger(__name__)


@dataclass
class Daemon:
    """A wired volantd: every collaborator, ready to serve."""

    settings: Settings
    store: Store
    plugins: PluginHost
    registries: Registries
    catalog: RuntimeCatalog
    orchestrator: Orchestrator
    server: ApiServer

    def start(self) -> None:
        """Re-adopt surviving VMs, then serve the API."""
        self.orchestrator.recover()
        self.server.start()
        host, port = self.server.address
        log.info("volantd listening on http://%s:%d", host, port)

    def stop(self) -> None:
        """Stop serving; running VMs keep running."""
        self.server.stop()
        self.orchestrator.shutdown()
        self.store.close()


def _notify_plugins(host: PluginHost, event: Event) -> None:
    """Hand ``event`` to the ``volant_event`` hook; a listener's bug never breaks the lifecycle."""
    try:
        host.hook.volant_event(event=event)
    except Exception:
        log.exception("a volant_event implementation failed on %s", event.type)


def build_daemon(settings: Settings, *, plugins: PluginHost | None = None) -> Daemon:
    """Open the state, load the plugins and wire the daemon (not yet serving)."""
    for directory in (settings.state_dir, settings.runtime_dir, settings.log_dir, settings.cache_dir):
        directory.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.db_path)
    host = plugins or load_plugins()
    registries = build_registries(host)

    def in_use(runtime: str) -> list[str]:
        return [vm.name for vm in store.vms.list() if vm.plugin == runtime]

    catalog = RuntimeCatalog(store, registries.runtime_manifests, host, in_use)
    bus = EventBus(
        persist=lambda e: store.events.append(e.type, e.to_dict(), vm_name=e.name).id,
        notify=functools.partial(_notify_plugins, host),
    )
    orchestrator = Orchestrator(settings, store, host, registries, catalog, bus)
    app = create_app(ApiDeps(orchestrator=orchestrator, catalog=catalog, plugins=host))
    server = ApiServer(app, *settings.listen_address)
    return Daemon(settings, store, host, registries, catalog, orchestrator, server)
