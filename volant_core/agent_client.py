"""Host side of the guest agent protocol: HTTP/1.1 to kestrel over any :class:`AgentChannel`.

The same client serves every hypervisor and network mode: a channel only has
to hand over a connected stream socket. Connections are kept alive and reused;
a channel that carries one stream at a time (``exclusive``, e.g. a serial
port) gets exactly one connection and callers take turns on it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from volant_core.errors import AgentError, AgentTimeout
from volant_core.launch import AgentChannel

#: Path kestrel answers 200 on once the workload is healthy (503 before).
HEALTH_PATH = "/v1/health"
#: Pause between two health probes while a guest boots.
HEALTH_POLL_INTERVAL = 0.25
#: Longest wait for one health probe: long enough for a slow guest, short enough to notice a dead VMM.
HEALTH_REQUEST_TIMEOUT = 5.0

_STALE_CONNECTION_ERRORS = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class AgentResponse:
    """One answer from kestrel; ``headers`` keys are lower-case."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body decoded as JSON; :class:`AgentError` when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise AgentError(
                f"agent answered {self.status} with a body that is not JSON: {self.body[:200]!r}"
            ) from exc


class _ChannelConnection(http.client.HTTPConnection):
    """An HTTP connection whose transport is an agent channel instead of TCP."""

    def __init__(self, channel: AgentChannel, timeout: float) -> None:
        super().__init__("kestrel", timeout=timeout)
        self._channel = channel
        self._io_timeout = timeout
        self.used = False

    def connect(self) -> None:
        self.sock = self._channel.connect(self._io_timeout)

    def set_timeout(self, timeout: float) -> None:
        self._io_timeout = timeout
        if self.sock is not None:
            self.sock.settimeout(timeout)


class AgentClient:
    """Talks HTTP/1.1 to kestrel over ``channel``; thread-safe, one instance per channel."""

    def __init__(self, channel: AgentChannel) -> None:
        """Use ``channel`` for every request; no connection is opened until the first one."""
        self.channel = channel
        self._turn = threading.Lock() if channel.exclusive else None
        self._idle: list[_ChannelConnection] = []
        self._idle_lock = threading.Lock()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30,
    ) -> AgentResponse:
        """Send one request and read the whole answer within ``timeout`` seconds.

        A kept-alive connection the agent closed meanwhile is replaced once,
        transparently. Raises :class:`AgentTimeout` when the agent does not
        answer in time and :class:`AgentError` when it cannot be reached.
        """
        deadline = time.monotonic() + timeout
        with self._taking_turns(deadline):
            while True:
                conn = self._checkout(max(deadline - time.monotonic(), 0.001))
                reused = conn.used
                try:
                    response = self._exchange(conn, method, path, body, headers or {})
                except _STALE_CONNECTION_ERRORS as exc:
                    conn.close()
                    if reused and time.monotonic() < deadline:
                        continue
                    raise AgentError(f"{self._what(method, path)}: connection lost: {exc}") from exc
                except TimeoutError as exc:
                    conn.close()
                    raise AgentTimeout(f"{self._what(method, path)}: no answer within {timeout:g} s") from exc
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    raise AgentError(f"{self._what(method, path)}: {str(exc) or type(exc).__name__}") from exc
                self._checkin(conn)
                return response

    def get(self, path: str, *, timeout: float = 30) -> AgentResponse:
        """``GET path``."""
        return self.request("GET", path, timeout=timeout)

    def wait_healthy(self, timeout: float, *, alive: Callable[[], bool]) -> dict[str, Any]:
        """Poll ``GET /v1/health`` until it answers 200 and return its JSON body.

        Raises :class:`AgentError` as soon as ``alive()`` is False (the VMM
        died) and :class:`AgentTimeout` when ``timeout`` seconds pass first.
        """
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            if not alive():
                raise AgentError(f"the VM exited before its agent became healthy ({last})")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AgentTimeout(
                    f"agent on {self.channel.describe()} not healthy within {timeout:g} s ({last})"
                )
            try:
                response = self.request("GET", HEALTH_PATH, timeout=min(remaining, HEALTH_REQUEST_TIMEOUT))
            except AgentError as exc:
                last = exc.message
            else:
                if response.status == 200:
                    body = response.json()
                    return body if isinstance(body, dict) else {"status": body}
                last = f"health answered {response.status}"
            time.sleep(max(0.0, min(HEALTH_POLL_INTERVAL, deadline - time.monotonic())))

    def close(self) -> None:
        """Close the kept-alive connections (the client stays usable)."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    @contextlib.contextmanager
    def _taking_turns(self, deadline: float) -> Iterator[None]:
        if self._turn is None:
            yield
            return
        if not self._turn.acquire(timeout=max(deadline - time.monotonic(), 0)):
            raise AgentTimeout(f"{self.channel.describe()} stayed busy with another request")
        try:
            yield
        finally:
            self._turn.release()

    def _checkout(self, timeout: float) -> _ChannelConnection:
        with self._idle_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = _ChannelConnection(self.channel, timeout)
        conn.set_timeout(timeout)
        return conn

    def _checkin(self, conn: _ChannelConnection) -> None:
        if conn.sock is None:  # the agent asked to close it
            return
        conn.used = True
        with self._idle_lock:
            self._idle.append(conn)

    @staticmethod
    def _exchange(
        conn: _ChannelConnection, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> AgentResponse:
        conn.request(method, path, body=body, headers=dict(headers))
        answer = conn.getresponse()
        payload = answer.read()
        if answer.will_close:
            conn.close()
        return AgentResponse(
            status=answer.status,
            headers={name.lower(): value for name, value in answer.getheaders()},
            body=payload,
        )

    def _what(self, method: str, path: str) -> str:
        return f"agent {method} {path} via {self.channel.describe()}"
