"""Assembling volantd: settings -> store, plugins, registries, catalog, orchestrator, API."""

from __future__ import annotations

import functools
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from volant_core.api.app import AGENT_PROXY_ROUTE, ApiDeps, create_app
from volant_core.api.server import ApiServer, ServerLimits
from volant_core.confinement import ArtifactPolicy
from volant_core.events import Event, EventBus
from volant_core.manifest import Manifest
from volant_core.metrics.daemon_metrics import DaemonMetrics
from volant_core.orchestrator import Orchestrator
from volant_core.orchestrator.deployments import Deployments
from volant_core.plugins import Plugins, load_plugins
from volant_core.runtimes import RuntimeCatalog
from volant_core.settings import IMAGES_DIR, Settings
from volant_core.store import Store, open_store
from volant_core.vmm_confinement import SEARCH_ONLY_MODE

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
        """Free the idempotency keys of requests an earlier run never finished, re-adopt surviving
        VMs, start reconciling deployments, then serve the API.
        """
        if released := self.store.idempotency.release_unfinished():
            log.info(
                "released %d idempotency keys of requests the last volantd run left unfinished", released
            )
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
    event_id = store.events.append(event.type, event.to_dict(), vm_name=event.name)
    if event_id % PRUNE_EVENTS_EVERY == 0:
        store.events.prune(keep)
    return event_id


#: volantd's umask: what it and its children (the VMMs, plugins' helpers) create is theirs alone.
PRIVATE_UMASK = 0o077
#: Mode of volantd's own directories.
PRIVATE_DIR_MODE = 0o700


def make_private_dirs(state_dir: Path, directories: list[Path]) -> None:
    """Create ``directories`` (parents too) mode 0700. Existing ones are narrowed to 0700 when they
    are ``state_dir`` or inside it (Volant's own, maybe made by an older version under a looser
    umask), except those a VMM hand-over left search-only for the VMMs' group (0710,
    :func:`volant_core.vmm_confinement.hand_over`): the confined VMMs a restarted daemon adopts
    still reach their VMs' directories through them. A directory elsewhere that a setting names is
    left as its owner made it.
    """
    for directory in directories:
        directory.mkdir(PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        if directory.is_relative_to(state_dir) and _mode(directory) != SEARCH_ONLY_MODE:
            directory.chmod(PRIVATE_DIR_MODE)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def warn_if_key_file_shared(settings: Settings) -> None:
    """Log a warning when the API key file can be read (or written) by other users than its owner."""
    if settings.api_key_file is None:
        return
    path = settings.api_key_file.expanduser()
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "the API key file %s is mode %04o: other users can read the key; run chmod 600 %s",
            path,
            mode,
            path,
        )


def build_daemon(settings: Settings, *, plugins: Plugins | None = None) -> Daemon:
    """Load the plugins, validate their settings, open the state and wire the daemon (not yet serving).

    Raises :class:`~volant_core.errors.ValidationError` naming the variable of an invalid plugin
    setting before anything is opened. Sets the process umask to 077 (:data:`PRIVATE_UMASK`) and
    makes volantd's directories 0700: an embedding program gets that umask too.
    """
    plugins = plugins or load_plugins()
    bus: EventBus  # made once the store is open; plugins publish only after that
    orchestrator: Orchestrator
    plugins.configure(settings, publisher=lambda event: bus.publish(event))
    os.umask(PRIVATE_UMASK)
    make_private_dirs(
        settings.state_dir,
        [
            settings.state_dir,
            settings.runtime_dir,
            settings.log_dir,
            settings.cache_dir,
            settings.state_dir / IMAGES_DIR,
            *(plugins.context(name).state_dir for name in plugins.loaded()),
        ],
    )
    warn_if_key_file_shared(settings)
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
    deployments = Deployments(
        store, bus, orchestrator, interval=settings.reconcile_interval, max_replicas=settings.max_replicas
    )
    metrics = DaemonMetrics(orchestrator, AGENT_PROXY_ROUTE, settings.download_dir)
    bus.add_listener(metrics.on_event)
    bus.add_listener(deployments.on_event)
    bus.add_listener(plugins.publish)
    app = create_app(
        ApiDeps(
            orchestrator=orchestrator,
            catalog=catalog,
            plugins=plugins,
            deployments=deployments,
            settings=settings,
            metrics=metrics,
        )
    )
    for info in plugins.info.values():
        if info.status == "failed":
            log.warning(
                "plugin %s (%s %s) failed: %s", info.name, info.distribution, info.version, info.error
            )
    server = ApiServer(app, *settings.listen_address, ServerLimits.from_settings(settings))
    return Daemon(settings, store, plugins, catalog, orchestrator, deployments, server)
