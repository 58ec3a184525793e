"""A client of Cloud Hypervisor's REST API (v54) over its UNIX socket.

One persistent HTTP/1.1 connection, every call bounded by a timeout; a connection the VMM closed
while idle is opened again once. Paths and bodies are those of ``cloud-hypervisor-v54-openapi.yaml``.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

#: Every path of the API is under this prefix.
BASE_PATH = "/api/v1"
#: Default bound on one call (connecting, sending, reading the answer), in seconds.
DEFAULT_TIMEOUT = 5.0


class ChApiError(Exception):
    """The API could not be reached, timed out, or answered with an error status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    """An HTTP connection over a UNIX stream socket."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


class CloudHypervisorApi:
    """The REST API of one Cloud Hypervisor process; thread-safe (calls take turns)."""

    def __init__(self, path: Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """A client of the API socket at ``path``; each call is bounded by ``timeout`` seconds."""
        self.path = path
        self.timeout = timeout
        self._connection: _UnixConnection | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CloudHypervisorApi({self.path})"

    # ------------------------------------------------------------ the calls

    def ping(self) -> dict[str, Any]:
        """``GET vmm.ping``: the VMM's version (and build, pid, features)."""
        return self._json("GET", "vmm.ping")

    def create(self, config: dict[str, Any]) -> None:
        """``PUT vm.create``: create the VM ``config`` (a ``VmConfig``) in this VMM, not booted."""
        self.call("PUT", "vm.create", config)

    def boot(self) -> None:
        """``PUT vm.boot``: boot the VM :meth:`create` made."""
        self.call("PUT", "vm.boot")

    def info(self) -> dict[str, Any]:
        """``GET vm.info``: the VM's configuration and state (``Running``, ``Paused`` ...)."""
        return self._json("GET", "vm.info")

    def counters(self) -> dict[str, dict[str, int]]:
        """``GET vm.counters``: per-device counters."""
        return self._json("GET", "vm.counters")

    def power_button(self) -> None:
        """``PUT vm.power-button``: the ACPI power button (a graceful guest shutdown)."""
        self.call("PUT", "vm.power-button")

    def shutdown(self) -> None:
        """``PUT vm.shutdown``: stop the VM (the VMM process stays)."""
        self.call("PUT", "vm.shutdown")

    def shutdown_vmm(self) -> None:
        """``PUT vmm.shutdown``: end the VMM process."""
        self.call("PUT", "vmm.shutdown")

    def pause(self) -> None:
        """``PUT vm.pause``."""
        self.call("PUT", "vm.pause")

    def resume(self) -> None:
        """``PUT vm.resume``."""
        self.call("PUT", "vm.resume")

    def snapshot(self, directory: Path) -> None:
        """``PUT vm.snapshot`` into ``directory`` (the VM must be paused)."""
        self.call("PUT", "vm.snapshot", {"destination_url": directory.resolve().as_uri()})

    def restore(self, directory: Path, *, prefault: bool = False) -> None:
        """``PUT vm.restore`` from the snapshot in ``directory``."""
        self.call("PUT", "vm.restore", {"source_url": directory.resolve().as_uri(), "prefault": prefault})

    def resize(self, *, vcpus: int | None = None, memory_bytes: int | None = None) -> None:
        """``PUT vm.resize`` to ``vcpus`` and/or ``memory_bytes`` (at least one)."""
        body: dict[str, int] = {}
        if vcpus is not None:
            body["desired_vcpus"] = vcpus
        if memory_bytes is not None:
            body["desired_ram"] = memory_bytes
        if not body:
            raise ValueError("resize needs vcpus or memory_bytes")
        self.call("PUT", "vm.resize", body)

    def add_device(self, sysfs_path: Path, *, device_id: str | None = None) -> dict[str, Any] | None:
        """``PUT vm.add-device``: hot-plug the VFIO device at ``sysfs_path``; its ``id`` and ``bdf``
        (None when it was cold-added: the VM was not booted).
        """
        body: dict[str, Any] = {"path": str(sysfs_path)}
        if device_id is not None:
            body["id"] = device_id
        answer = self.call("PUT", "vm.add-device", body)
        return answer if isinstance(answer, dict) else None

    def remove_device(self, device_id: str) -> None:
        """``PUT vm.remove-device``: unplug the device ``device_id``."""
        self.call("PUT", "vm.remove-device", {"id": device_id})

    # ------------------------------------------------------------ the transport

    def call(self, method: str, endpoint: str, body: Any = None) -> Any:
        """Send ``method`` to ``/api/v1/<endpoint>`` with ``body`` as JSON; the decoded answer (None
        for an empty one). Raises :class:`ChApiError` on an error status, a timeout or no socket.
        """
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Host": "localhost", "Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        with self._lock:
            for attempt in (1, 2):
                reused = self._connection is not None
                connection = self._connection or _UnixConnection(self.path, self.timeout)
                self._connection = connection
                try:
                    connection.request(method, f"{BASE_PATH}/{endpoint}", body=payload, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                    self._drop()
                    if reused and attempt == 1:
                        continue  # the VMM closed the idle connection: once more on a new one
                    raise ChApiError(f"{method} {endpoint}: {exc}") from exc
                except (OSError, http.client.HTTPException) as exc:
                    self._drop()
                    raise ChApiError(f"{method} {endpoint}: cannot talk to {self.path}: {exc}") from exc
                if response.will_close:
                    self._drop()
                break
        if response.status >= 300:
            detail = data.decode(errors="replace").strip()[:500]
            raise ChApiError(
                f"{method} {endpoint}: {response.status} {response.reason} {detail}".strip(), response.status
            )
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ChApiError(f"{method} {endpoint}: not JSON: {data[:200]!r}") from exc

    def close(self) -> None:
        """Close the connection (the next call opens another)."""
        with self._lock:
            self._drop()

    def __enter__(self) -> CloudHypervisorApi:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _json(self, method: str, endpoint: str) -> Any:
        answer = self.call(method, endpoint)
        if not isinstance(answer, dict):
            raise ChApiError(f"{method} {endpoint}: expected a JSON object, got {answer!r}")
        return answer

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def api_answers(path: Path, timeout: float) -> bool:
    """Whether the API socket at ``path`` answers ``vmm.ping`` within ``timeout`` seconds."""
    try:
        with CloudHypervisorApi(path, timeout=timeout) as api:
            api.ping()
    except ChApiError:
        return False
    return True
