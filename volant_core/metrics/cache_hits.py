"""Artifact cache hits, counted per cache directory (each daemon reads its own at scrape time).

The boot sources look artifacts up in a cache directory without knowing which daemon asked; the
directory tells daemons apart (two daemons in one process, as in the tests, have two).
"""

from __future__ import annotations

import threading
from pathlib import Path

from volant_core.metrics.tally import Tally

_lock = threading.Lock()
_hits: dict[Path, Tally] = {}


def _tally(cache_dir: Path) -> Tally:
    with _lock:
        return _hits.setdefault(cache_dir, Tally())


def cache_hit(cache_dir: Path, path: Path) -> Path:
    """Count an artifact served from ``cache_dir`` without downloading or copying it; ``path``, unchanged."""
    _tally(cache_dir).add()
    return path


def hits(cache_dir: Path) -> int:
    """How many artifacts were served from ``cache_dir`` since the process started."""
    return _tally(cache_dir).value
