"""``/api/v1/images/cache``: the boot media volantd downloaded, and pruning what no VM uses."""

from __future__ import annotations

import falcon

from volant_core.api.openapi.operations import operation
from volant_core.api.responses import ImageCacheListing, ImageCachePruned
from volant_core.orchestrator import Orchestrator
from volant_core.orchestrator.media_cache import CachedArtifact


class ImageCache:
    """``/api/v1/images/cache`` (list) and ``/api/v1/images/cache/prune``."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    @operation(response=ImageCacheListing)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Every verified artifact and resumable partial download in the cache, with its size and
        the VMs whose configurations name it.
        """
        listed = self.orchestrator.media_cache.entries()
        resp.media = {
            "entries": [item.to_dict() for item in listed],
            "total_bytes": sum(item.entry.size for item in listed),
        }

    @operation(response=ImageCachePruned)
    def on_post_prune(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Remove every cached artifact and partial download no VM's configuration names (those
        being fetched stay); what was removed and the bytes freed.
        """
        removed = self.orchestrator.media_cache.prune()
        resp.media = {
            "removed": [CachedArtifact(entry, ()).to_dict() for entry in removed],
            "freed_bytes": sum(entry.size for entry in removed),
        }
