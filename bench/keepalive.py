"""A benchmark's API client that keeps one HTTP/1.1 connection for all its requests.

The baselines the benchmarks compare with keep their connections too (the daemon's agent client
reuses its connection to kestrel; the store needs none), so the figures are what volantd adds
per request, not a TCP handshake and ``urllib``'s request building on each one.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

#: A connection idle this long (seconds) is replaced before the next request: volantd closes
#: idle keep-alive connections after ``VOLANT_API_KEEPALIVE_TIMEOUT`` (5 s by default), and a
#: request must never be sent on a connection the server is closing.
IDLE_REOPEN_S = 1.0


class KeptAliveClient:
    """Sends requests to volantd at ``url`` on one kept-alive connection (a new one after a pause)."""

    def __init__(self, url: str, *, timeout: float = 60) -> None:
        """A client of the daemon at ``url`` (``http://host:port``); nothing is connected yet."""
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self._connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        self._last_used = time.monotonic()

    def send(self, method: str, path: str, payload: Any = None) -> tuple[int, bytes]:
        """Send one request (``payload`` as JSON); its status and body, read to the end."""
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Host": "localhost"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if time.monotonic() - self._last_used > IDLE_REOPEN_S:
            self._connection.close()  # reconnected by the request below
        self._connection.request(method, path, body=body, headers=headers)
        answer = self._connection.getresponse()
        read = answer.read()
        self._last_used = time.monotonic()
        return answer.status, read

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()
