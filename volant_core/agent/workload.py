"""The workload: start it from the manifest, keep its recent output, gate on its health check,
stop it. Its state is what ``/v1/health`` reports."""

from __future__ import annotations

import collections
import functools
import http.client
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import rootfs
from .console import say
from .constants import WORKLOAD_READY_LINE
from .reaper import ChildExit, Reaper

SANE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_HEALTH_TIMEOUT_MS = 60_000
_PROBE_INTERVAL_S = 0.1
_LATE_PROBE_INTERVAL_S = 1.0  # after timeout_ms: keep probing, slower
_PROBE_TIMEOUT_S = 2.0
_LOG_LINES = 1000
_LOG_LINE_MAX = 4096


@dataclass(frozen=True)
class Status:
    """The agent's view of the workload: ``starting``, ``ok``, ``unhealthy`` or ``error``."""

    status: str
    reason: str | None = None


class LogRing:
    """The most recent lines of workload output."""

    def __init__(self, size: int = _LOG_LINES) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def append(self, line: str) -> None:
        """Keep ``line`` (truncated), dropping the oldest line when full."""
        with self._lock:
            self._lines.append(line[:_LOG_LINE_MAX])

    def tail(self, count: int | None = None) -> list[str]:
        """The last ``count`` lines (all kept lines if None)."""
        with self._lock:
            lines = list(self._lines)
        return lines if count is None else lines[-count:] if count > 0 else []


def probe(url: str, timeout: float) -> int | None:
    """The status of ``GET url``, or None if it could not be fetched."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        connection.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


class Workload:
    """Runs ``manifest["workload"]`` once and tracks its health; see :meth:`run`."""

    def __init__(
        self,
        manifest: dict[str, Any] | None,
        reaper: Reaper,
        manifest_error: str | None,
        root: str | None = None,
    ) -> None:
        """Run ``manifest``'s workload (``manifest_error`` says why there is none) inside ``root``
        (a directory that becomes its ``/``; None: kestrel's own root).
        """
        self._root = root
        self.spec: dict[str, Any] = dict((manifest or {}).get("workload") or {})
        self.health_check: dict[str, Any] | None = (manifest or {}).get("health_check")
        self.logs = LogRing()
        self._reaper = reaper
        self._child: ChildExit | None = None
        self._stopping = threading.Event()
        self._spawning = threading.Lock()  # held by _start and stop: no workload starts after a stop
        self._status = Status("error", manifest_error) if manifest is None else Status("starting")

    @property
    def status(self) -> Status:
        """The current status."""
        return self._status

    @property
    def pid(self) -> int | None:
        """The workload's pid once started."""
        return self._child.pid if self._child else None

    @property
    def base_url(self) -> str | None:
        """Where the workload serves HTTP, if it does."""
        return self.spec.get("base_url") or None

    def refuse(self, reason: str) -> None:
        """Report ``reason`` as an error instead of starting the workload (call before :meth:`run`)."""
        self._set("error", reason)

    def _set(self, status: str, reason: str | None = None) -> None:
        self._status = Status(status, reason)
        say(f"kestrel: workload {status}: {reason}" if reason else WORKLOAD_READY_LINE)

    def _environment(self) -> dict[str, str]:
        env = {"PATH": SANE_PATH, "HOME": "/root", "LANG": "C.UTF-8"}
        env.update({str(k): str(v) for k, v in (self.spec.get("env") or {}).items()})
        return env

    def _pump(self, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            self.logs.append(line)
            say(line)

    def _start(self) -> ChildExit | None:
        argv = [str(a) for a in self.spec.get("entrypoint") or []]
        if not argv:
            self._set("error", "manifest has no workload.entrypoint")
            return None
        if (self.health_check or {}).get("endpoint") and not self.base_url:
            self._set("error", "manifest has a health_check but no workload.base_url")
            return None
        workdir = self.spec.get("workdir") or "/"
        if self._root is not None and not Path(self._root, workdir.lstrip("/")).is_dir():
            self._set("error", f"workload.workdir {workdir} does not exist in the root filesystem")
            return None
        with self._spawning:
            if self._stopping.is_set():
                return None
            try:
                process, child = self._reaper.spawn(
                    argv,
                    **self._placement(workdir),
                    env=self._environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                self._set("error", f"cannot start {argv[0]}: {exc}")
                return None
            self._child = child
        say(f"kestrel: workload started (pid {child.pid}): {' '.join(argv)}")
        threading.Thread(target=self._pump, args=(process.stdout,), name="workload-log", daemon=True).start()
        return child

    def _placement(self, workdir: str) -> dict[str, Any]:
        """Where the workload starts: ``workdir``, inside the root when there is one."""
        if self._root is None:
            return {"cwd": workdir}
        return {"preexec_fn": functools.partial(rootfs.enter, self._root, workdir)}

    def _health_url(self) -> str | None:
        endpoint = (self.health_check or {}).get("endpoint")
        return (self.base_url or "").rstrip("/") + "/" + str(endpoint).lstrip("/") if endpoint else None

    def live_status(self) -> Status:
        """The status, with a healthy workload's health check run again now (the host polls this)."""
        state = self._status
        url = self._health_url()
        if state.status != "ok" or url is None:
            return state
        code = probe(url, _PROBE_TIMEOUT_S)
        if code is not None and 200 <= code < 300:
            return state
        return Status("unhealthy", f"health check {url} answered {code or 'nothing'}")

    def _await_health(self, child: ChildExit) -> bool:
        """Probe until the health check passes (True) or the workload exits or stops (False).

        Past the manifest's ``timeout_ms`` the workload is reported ``unhealthy``, but probing
        goes on (once a second): a slow start recovers to ``ok`` when its check passes.
        """
        url = self._health_url()
        if url is None:
            return not child.exited
        timeout_ms = (self.health_check or {}).get("timeout_ms") or DEFAULT_HEALTH_TIMEOUT_MS
        deadline = time.monotonic() + timeout_ms / 1000
        late = False
        while not child.exited and not self._stopping.is_set():
            if not late and time.monotonic() >= deadline:
                self._set("unhealthy", f"health check {url} did not pass within {timeout_ms} ms")
                late = True
            status = probe(url, _PROBE_TIMEOUT_S)
            if status is not None and 200 <= status < 300:
                return True
            child.wait(_LATE_PROBE_INTERVAL_S if late else _PROBE_INTERVAL_S)
        return False

    def run(self) -> None:
        """Start the workload, wait for its health check, then watch it until it exits (blocking)."""
        if self._status.status == "error":
            return
        child = self._start()
        if child is None:
            return
        if self._await_health(child):
            self._set("ok")
        child.wait()
        if not self._stopping.is_set():
            self._set("unhealthy", f"workload exited with status {child.returncode}")

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the workload's process group, SIGKILL it after ``grace_s`` seconds."""
        with self._spawning:
            self._stopping.set()
            child = self._child
        if child is None or child.exited:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(child.pid, sig)
            except ProcessLookupError:
                return
            if child.wait(grace_s):
                return
