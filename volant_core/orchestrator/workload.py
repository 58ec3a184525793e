"""Reaching a VM's workload: its actions, its OpenAPI document and its console log.

Contracts (the Go original got the first two wrong):

* an action ``{method, path}`` of the manifest is sent to kestrel as
  ``<method> /v1<path>``; kestrel passes ``/v1/*`` to the workload at
  ``<base_url><path>``, so ``path`` is a path of the workload's own API;
* the workload's OpenAPI document is fetched the same way, from
  ``manifest.openapi`` when it is a path (or a URL under ``base_url``), else
  from ``/openapi``. It is never read from the host's filesystem;
* logs are the guest's console output, which the hypervisor keeps in a file on
  the host: kernel and kestrel lines and the workload's stdout/stderr.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from volant_core.errors import NotFoundError, ValidationError
from volant_core.manifest import Manifest

#: Timeout of an action without ``timeout_ms`` (seconds).
DEFAULT_ACTION_TIMEOUT_S = 60.0
#: Where the workload's OpenAPI document is looked for when the manifest names none.
DEFAULT_OPENAPI_PATH = "/openapi"
#: How often a followed log is checked for new output (seconds).
FOLLOW_POLL_S = 0.2
_TAIL_CHUNK = 64 * 1024
#: The most ``GET .../logs`` returns before following: the end of the log, whatever its lines.
MAX_TAIL_BYTES = 1024 * 1024


@dataclass(frozen=True)
class AgentCall:
    """One request for kestrel: method, path under ``/v1`` and timeout."""

    method: str
    path: str
    timeout: float


def action_call(manifest: Manifest, action: str) -> AgentCall:
    """The agent request for ``action``; NotFoundError listing the manifest's actions otherwise."""
    found = manifest.actions.get(action)
    if found is None:
        known = ", ".join(sorted(manifest.actions)) or "none"
        raise NotFoundError(
            f"action {action!r} is not in runtime {manifest.name!r}; its actions: {known}", field="action"
        )
    timeout = found.timeout_ms / 1000 if found.timeout_ms else DEFAULT_ACTION_TIMEOUT_S
    return AgentCall(found.method.upper(), "/v1/" + found.path.lstrip("/"), timeout)


def openapi_call(manifest: Manifest) -> AgentCall:
    """The agent request for the workload's OpenAPI document."""
    location = manifest.openapi or DEFAULT_OPENAPI_PATH
    parsed = urllib.parse.urlsplit(location)
    if parsed.scheme or parsed.netloc:
        base = manifest.workload.base_url.rstrip("/")
        if not location.startswith(base + "/"):
            raise ValidationError(
                f"manifest.openapi: {location!r} is not served by the workload ({base}); "
                "give a path of the workload's API, e.g. /openapi.json",
                field="manifest.openapi",
            )
        location = location[len(base) :]
    if not location.startswith("/"):
        raise ValidationError(
            f"manifest.openapi: {location!r} must be a path such as /openapi.json", field="manifest.openapi"
        )
    return AgentCall("GET", "/v1" + location, DEFAULT_ACTION_TIMEOUT_S)


def tail(path: Path, lines: int, end: int, max_bytes: int = MAX_TAIL_BYTES) -> bytes:
    """The last ``lines`` lines of ``path`` before byte ``end``, at most its last ``max_bytes`` bytes.

    Read backwards in one pass, each byte at most once, never more than ``max_bytes`` (plus one
    chunk): a console log may be large and hold no newline at all (the answer then starts mid-line).
    """
    if lines <= 0 or max_bytes <= 0 or not path.exists():
        return b""
    chunks: list[bytes] = []
    newlines = 0
    taken = 0
    with path.open("rb") as log:
        position = end
        while position > 0 and newlines <= lines and taken < max_bytes:
            start = max(0, position - _TAIL_CHUNK)
            log.seek(start)
            chunk = log.read(position - start)
            chunks.append(chunk)
            newlines += chunk.count(b"\n")
            taken += len(chunk)
            position = start
    data = b"".join(reversed(chunks))[-max_bytes:]
    return b"".join(data.splitlines(keepends=True)[-lines:])


def follow(path: Path, start: int, active: Callable[[], bool]) -> Iterator[bytes]:
    """Yield what is appended to ``path`` from byte ``start`` on, until ``active()`` turns False
    and nothing more comes.
    """
    position = start
    while True:
        size = path.stat().st_size if path.exists() else 0
        if size > position:
            with path.open("rb") as log:
                log.seek(position)
                chunk = log.read(size - position)
            position = size
            yield chunk
        elif not active():
            return
        else:
            time.sleep(FOLLOW_POLL_S)
