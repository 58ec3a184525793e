"""The boot source: opens the artifacts that ``{{ cookiecutter.plugin_name|replace('_', '-')|replace('.', '-') }}://<name>`` URLs name.

As generated, an artifact is the file ``<name>`` in a directory on the host (a stand-in for a
bucket or a registry: open your store's object here instead). volantd reads what ``open`` returns,
verifies it against the manifest's checksum, caches and shares it; the source only reads. Honour
``offset`` (resume a cut download) or answer from byte 0: the core handles both.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from volant_core.sdk import ArtifactStream, ValidationError

#: The URL scheme of this source.
SCHEME = "{{ cookiecutter.plugin_name|replace('_', '-')|replace('.', '-') }}"


class DirectorySource:
    """Serves ``<scheme>://<name>`` from the files of ``root``."""

    def __init__(self, root: Path) -> None:
        """Read artifacts from ``root``."""
        self.root = root

    def open(
        self, url: str, *, offset: int, deadline: float, validators: Mapping[str, str]
    ) -> ArtifactStream:
        """The artifact ``url`` names, from byte ``offset`` on (``deadline``: ``time.monotonic()``
        time the fetch must end by; a local read is quick, a network store must watch it)."""
        parts = urlsplit(url)
        name = PurePosixPath(parts.netloc + parts.path)
        if parts.scheme != SCHEME or name.is_absolute() or ".." in name.parts or not name.parts:
            raise ValidationError(f"{url}: write {SCHEME}://<name of an artifact>", field="url")
        path = self.root / name
        if not path.is_file():
            raise ValidationError(f"{url}: no artifact {name} in {self.root}", field="url")
        body = path.open("rb")
        size = path.stat().st_size
        start = offset if 0 < offset <= size else 0
        body.seek(start)
        return ArtifactStream(body, size=size, offset=start)
