"""The download cache as the API shows it: every entry with the VMs that still use it, and pruning
what no VM uses.

A VM uses a cached artifact when any configuration version it keeps (the current one, the one it
booted with, those a rollback may return to) names it: by checksum, or by the URL whose copy the
cache holds. Pruning never removes those, nor an artifact being fetched right now.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from volant_core.artifact_cache import ArtifactCache, CacheEntry
from volant_core.orchestrator.vmconfig import VMConfig
from volant_core.store import Store


@dataclass(frozen=True)
class CachedArtifact:
    """A cache entry and the names of the VMs whose configurations name it."""

    entry: CacheEntry
    used_by: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """The API's form (``ImageCacheEntry``)."""
        entry = self.entry
        return {
            "kind": entry.kind,
            "digest": entry.digest,
            "path": str(entry.path),
            "size": entry.size,
            "modified": entry.modified,
            "url": entry.url,
            "used_by": list(self.used_by),
        }


class MediaCache:
    """Lists and prunes ``cache`` knowing which VMs of ``store`` use what."""

    def __init__(self, store: Store, cache: ArtifactCache) -> None:
        self._store = store
        self._cache = cache

    def entries(self) -> list[CachedArtifact]:
        """Every entry of the cache with the VMs using it."""
        users = self._users()
        return [CachedArtifact(e, tuple(sorted(users.get(e.path, ())))) for e in self._cache.entries()]

    def prune(self) -> list[CacheEntry]:
        """Remove every entry no VM uses (and none being fetched); the removed ones."""
        return self._cache.prune(keep=set(self._users()))

    def _users(self) -> dict[Path, set[str]]:
        """Cached path -> names of the VMs whose kept configurations name it."""
        users: dict[Path, set[str]] = defaultdict(set)
        for record in self._store.vms.list():
            for version in self._store.configs.history(record.id):
                for artifact in VMConfig.model_validate(version.config).boot_artifacts():
                    path = self._cache.cached_path(artifact.location, artifact.checksum)
                    if path is not None:
                        users[path].add(record.name)
        return users
