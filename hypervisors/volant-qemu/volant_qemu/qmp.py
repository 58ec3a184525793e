"""A minimal QEMU Machine Protocol client over a UNIX socket.

It reads the greeting, negotiates capabilities and executes commands one at a
time, skipping the asynchronous events QEMU interleaves with replies. Every
read is bounded by a deadline.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any


class QmpError(Exception):
    """QMP could not be reached, timed out, or answered a command with an error."""


class QmpClient:
    """One QMP session; use as a context manager or call :meth:`close`."""

    def __init__(self, path: Path, *, timeout: float = 5.0) -> None:
        """Connect to the QMP socket at ``path``, read the greeting and enter command mode.

        Raises :class:`QmpError` (connection refused, missing socket, no greeting within ``timeout``).
        """
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._buffer = b""
        try:
            self._sock.settimeout(timeout)
            self._sock.connect(str(path))
            self.greeting: dict[str, Any] = self._read_message(time.monotonic() + timeout)
            if "QMP" not in self.greeting:
                raise QmpError(f"not a QMP greeting: {self.greeting!r}")
            self.execute("qmp_capabilities", timeout=timeout)
        except OSError as exc:
            self.close()
            raise QmpError(f"cannot talk to QMP at {path}: {exc}") from exc
        except QmpError:
            self.close()
            raise

    def execute(self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float = 5.0) -> Any:
        """Run ``command`` and return its ``return`` value; raise :class:`QmpError` on an error reply."""
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        deadline = time.monotonic() + timeout
        try:
            self._sock.sendall(json.dumps(message).encode() + b"\n")
            while True:
                reply = self._read_message(deadline)
                if "event" in reply:
                    continue
                if "error" in reply:
                    error = reply["error"]
                    raise QmpError(f"{command}: {error.get('class')}: {error.get('desc')}")
                if "return" in reply:
                    return reply["return"]
        except OSError as exc:
            raise QmpError(f"{command}: {exc}") from exc

    def close(self) -> None:
        """Close the session (QEMU then accepts the next client)."""
        self._sock.close()

    def __enter__(self) -> QmpClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QmpError("timed out waiting for QMP")
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError as exc:
                raise QmpError("timed out waiting for QMP") from exc
            if not chunk:
                raise QmpError("QMP connection closed by QEMU")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise QmpError(f"malformed QMP message: {line[:200]!r}") from exc
        if not isinstance(message, dict):
            raise QmpError(f"malformed QMP message: {line[:200]!r}")
        return message
