"""kestrel as an ordinary host process serving on a UNIX socket, for tests.

:func:`kestrel_host` writes a manifest file, runs ``python -m volant_core.agent
--listen-unix SOCKET --manifest-file FILE`` in its own session and, on exit,
stops it and reaps it, whatever the test did. The workload kestrel starts is
the manifest's, run on the host: :func:`volant_core.testing.waiting.free_port` finds it a port.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from volant_core.channels import UnixSocketChannel
from volant_core.testing.processes import descendants, kill_all
from volant_core.testing.waiting import free_port

#: The agent package run by default (``python -m``).
AGENT_MODULE = "volant_core.agent"
#: Seconds kestrel gets to stop its workload and exit after SIGTERM, and to disappear after SIGKILL.
STOP_GRACE = 15.0
#: Default wait for the socket to accept connections.
LISTEN_TIMEOUT = 30.0
#: How much of ``kestrel.log`` an error quotes.
LOG_TAIL_CHARS = 3000


def http_server_workload(workdir: Path) -> dict[str, Any]:
    """A manifest's ``workload``: ``python -m http.server`` serving ``workdir`` on a free loopback port."""
    port = free_port()
    return {
        "type": "http",
        "base_url": f"http://127.0.0.1:{port}",
        "entrypoint": [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        "workdir": str(workdir),
    }


def script_workload(script: Path, port: int, *args: str) -> dict[str, Any]:
    """A manifest's ``workload``: the Python ``script`` (run unbuffered by this interpreter) serving
    HTTP on loopback ``port``, started with ``port`` and ``args`` as its arguments.
    """
    return {
        "type": "http",
        "base_url": f"http://127.0.0.1:{port}",
        "entrypoint": [sys.executable, "-u", str(script), str(port), *args],
    }


def gated_runtime(name: str, app: Path, marker: Path, *, health_timeout_ms: int) -> dict[str, Any]:
    """A runtime manifest ``name`` whose workload, the test app ``app`` (``tests/guest/workload_app.py``),
    answers its health check only while ``marker`` exists, and whose health check waits up to
    ``health_timeout_ms`` for that.
    """
    return {
        "name": name,
        "version": "1.0.0",
        "runtime": name,
        "workload": script_workload(app, free_port(), str(marker)),
        "health_check": {"endpoint": "/healthz", "timeout_ms": health_timeout_ms},
    }


def kestrel_argv(
    socket_path: Path,
    manifest_file: Path,
    *,
    python: str | os.PathLike[str] = sys.executable,
    module: str = AGENT_MODULE,
) -> list[str]:
    """The command running kestrel in host mode on ``socket_path`` with the manifest in ``manifest_file``."""
    return [
        os.fspath(python),
        "-m",
        module,
        "--listen-unix",
        str(socket_path),
        "--manifest-file",
        str(manifest_file),
    ]


def spawn_kestrel(
    argv: list[str], log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (it leads its process group), output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class KestrelHost:
    """A running kestrel in host mode: its ``process``, ``socket_path`` and ``log``.

    The process leads its own process group; :meth:`stop` signals the group.
    """

    def __init__(
        self, argv: list[str], *, socket_path: Path, log: Path, env: Mapping[str, str] | None
    ) -> None:
        """Start ``argv`` (serving on ``socket_path``) with ``env`` (None: inherited), its output
        appended to ``log``.
        """
        self.argv = argv
        self.socket_path = socket_path
        self.log = log
        self.env = env
        self.process = self._spawn()

    @property
    def channel(self) -> UnixSocketChannel:
        """An agent channel to the socket (not exclusive: kestrel serves connections in parallel)."""
        return UnixSocketChannel(self.socket_path, exclusive=False)

    def wait_listening(self, timeout: float = LISTEN_TIMEOUT) -> None:
        """Return once the socket accepts connections.

        Raises ``RuntimeError`` when kestrel exits first and ``TimeoutError`` after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.channel.connect(timeout=1.0).close()
                return
            except OSError:
                pass
            status = self.process.poll()
            if status is not None:
                raise RuntimeError(
                    f"kestrel exited with status {status}; end of {self.log}:\n{self.log_tail()}"
                )
            if time.monotonic() >= deadline:
                raise TimeoutError(f"kestrel did not listen on {self.socket_path} within {timeout:g} s")
            time.sleep(0.05)

    def stop(self, grace: float = STOP_GRACE) -> int:
        """SIGTERM kestrel's process group (kestrel stops its workload, then exits), SIGKILL it after
        ``grace`` seconds; reap it and return its exit status. A no-op when it already exited. What
        kestrel had started and left running (a kestrel that had to be killed) is killed after it.
        """
        started = descendants(self.process.pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace)
        status = self.process.wait(grace)
        kill_all(started)
        return status

    def restart(self) -> None:
        """Stop kestrel (and so its workload) and start it again on the same socket and manifest."""
        self.stop()
        self.process = self._spawn()

    def log_tail(self) -> str:
        """The end of everything kestrel and its workload printed."""
        return self.log.read_text(errors="replace")[-LOG_TAIL_CHARS:] if self.log.exists() else ""

    def _spawn(self) -> subprocess.Popen[bytes]:
        return spawn_kestrel(self.argv, self.log, self.env)


@contextlib.contextmanager
def kestrel_host(
    manifest: Mapping[str, Any] | bytes | None,
    directory: Path,
    *,
    python: str | os.PathLike[str] = sys.executable,
    module: str = AGENT_MODULE,
    env: Mapping[str, str] | None = None,
) -> Iterator[KestrelHost]:
    """Run kestrel in host mode on ``manifest`` for the duration of the ``with`` block.

    ``manifest`` is written to ``directory/manifest.json``: a mapping as JSON,
    bytes as they are; with None no file is written (kestrel then reports a
    manifest error). kestrel's output goes to ``directory/kestrel.log``. The
    socket lives in a fresh short temporary directory (UNIX socket paths must
    stay under 108 bytes), removed on exit. ``python`` and ``module`` choose
    the interpreter and the agent package (say, a copy under another name);
    ``env`` replaces the environment (None: inherited).
    """
    manifest_file = directory / "manifest.json"
    if isinstance(manifest, bytes):
        manifest_file.write_bytes(manifest)
    elif manifest is not None:
        manifest_file.write_text(json.dumps(manifest))
    socket_dir = Path(tempfile.mkdtemp(prefix="kestrel-"))
    socket_path = socket_dir / "agent.sock"
    argv = kestrel_argv(socket_path, manifest_file, python=python, module=module)
    try:
        host = KestrelHost(argv, socket_path=socket_path, log=directory / "kestrel.log", env=env)
        try:
            yield host
        finally:
            host.stop()
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)
