"""What a VM being booted downloads, as volantd reports it, for the spinner line of ``volar``.

volantd publishes ``VM_DOWNLOAD_PROGRESS`` events while it fetches a starting VM's boot media
(ADR 0036); :class:`DownloadWatch` follows them on the event stream in a thread of its own and
:meth:`DownloadWatch.describe` draws the latest as a bar with the byte counts.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

from volant_core.cli.client import ApiClient, ApiError
from volant_core.cli.events import Resume, frames
from volant_core.cli.progress import byte_bar, terminal


class DownloadWatch:
    """The latest download progress of one VM, followed from the event stream once started."""

    def __init__(self, client: ApiClient, name: str) -> None:
        self._client = client
        self._name = name
        self._latest: dict[str, Any] | None = None

    def start(self) -> None:
        """Follow the VM's ``VM_DOWNLOAD_PROGRESS`` events in a daemon thread (it ends with volar)."""
        threading.Thread(target=self._follow, name=f"downloads of {self._name}", daemon=True).start()

    def _follow(self) -> None:
        query = urllib.parse.urlencode({"type": "VM_DOWNLOAD_PROGRESS", "name": self._name})
        with contextlib.suppress(ApiError, OSError, http.client.HTTPException, ValueError):
            with self._client.stream(f"/api/v1/events/vms?{query}", timeout=None) as body:
                for frame in frames(body, Resume(None)):
                    data = frame.payload().get("data")
                    if isinstance(data, dict):
                        self._latest = data

    def describe(self) -> str:
        """``" [####------] 1.2 MiB of 3.0 MiB manifest.rootfs.url"``, or "" before any progress."""
        latest = self._latest
        if latest is None:
            return ""
        return f" {byte_bar(int(latest['done']), latest.get('total'))} {latest.get('field', '')}"


@contextlib.contextmanager
def download_watch(client: ApiClient, name: str) -> Iterator[DownloadWatch]:
    """A :class:`DownloadWatch` of VM ``name``, following the stream only when stderr is a terminal
    (where progress is drawn); otherwise it describes nothing.
    """
    watch = DownloadWatch(client, name)
    if terminal() is not None:
        watch.start()
    yield watch
