"""A minimal HTTP client for kestrel on a UNIX socket (host mode or a QEMU virtio-serial chardev)."""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass
from typing import Any


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a UNIX stream socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("kestrel", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        """Connect to the socket instead of a TCP host."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


@dataclass
class Reply:
    """One answer from kestrel."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class AgentConnection:
    """One keep-alive connection to kestrel; requests go one at a time."""

    def __init__(self, path: str, timeout: float = 60.0) -> None:
        self._connection = UnixHTTPConnection(path, timeout)

    def request(
        self, method: str, target: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        """Send one request and read the whole answer."""
        self._connection.request(method, target, body=body, headers=headers or {})
        response = self._connection.getresponse()
        payload = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, payload)

    def wait_health(self, wanted: str, timeout: float) -> dict[str, Any]:
        """Poll ``/v1/health`` until its status is ``wanted``; the last body, or AssertionError."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.request("GET", "/v1/health").json()
            if body["status"] == wanted:
                return body
            assert time.monotonic() < deadline, f"health stayed {body} instead of {wanted!r}"
            time.sleep(0.1)

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()


def wait_for_socket(path: str, timeout: float, alive: Any = lambda: True) -> None:
    """Return once a UNIX socket at ``path`` accepts connections; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
                return
            except OSError:
                pass
        assert alive(), f"the process serving {path} died"
        assert time.monotonic() < deadline, f"nothing listens on {path} after {timeout} s"
        time.sleep(0.05)
