"""A real volantd for tests: in-process, on a loopback port, with its own short state directory."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from volant_core.cli.client import ApiClient, ApiError, Reply, Unreachable
from volant_core.daemon import Daemon, build_daemon
from volant_core.errors import NotFoundError
from volant_core.guest import GuestArtifacts
from volant_core.plugins import load_plugins
from volant_core.settings import load_settings
from volant_core.testing.processes import kill_mentioning


@dataclass
class RunningDaemon:
    """A started daemon and a tiny HTTP client for it."""

    daemon: Daemon
    url: str
    state_dir: Path
    #: Sent on every request when set: ``dataclasses.replace(daemon, api_key=KEY)`` makes a keyed client.
    api_key: str | None = None
    #: The in-process plugins it was started with (``restart`` registers them again by default).
    plugins: tuple[tuple[str, object], ...] = ()

    def restart(self, *, plugins: Iterable[tuple[str, object]] | None = None, **settings: Any) -> None:
        """Stop this daemon as volantd stops (VMs keep running) and start a new one on the same state,
        settings (but for the fields in ``settings``, ``kernel=None`` say) and address, with
        ``plugins`` (default: the same in-process plugins) as it would after an upgrade or a crash:
        it re-adopts the VMMs and calls ``volant_daemon_started``.
        """
        listen = self.url.removeprefix("http://")
        new_settings = self.daemon.settings.model_copy(update={**settings, "api_listen": listen})
        self.daemon.stop()
        if plugins is not None:
            self.plugins = tuple(plugins)
        self.daemon = build_daemon(new_settings, plugins=load_plugins(extra=self.plugins))
        self.daemon.start()

    def request(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Reply:
        """Send one request over real HTTP; non-2xx answers are returned, not raised."""
        return self.client(timeout).send(method, path, payload, raw=raw, headers=headers)

    def wait_for_status(self, name: str, wanted: set[str], timeout: float = 120) -> dict[str, Any]:
        """Poll ``GET /api/v1/vms/{name}`` until its status is in ``wanted``; the VM resource."""
        return wait_for_vm_status(self.client(), name, wanted, timeout)

    def client(self, timeout: float = 60) -> ApiClient:
        """An API client of this daemon (with :attr:`api_key`)."""
        return StackDumpingClient(self.url, api_key=self.api_key, timeout=timeout)


class StackDumpingClient(ApiClient):
    """An :class:`ApiClient` of an in-process daemon that, when a request times out, writes the
    stack of every thread of the process to stderr first: the daemon's threads are there, so the
    test's report shows where the unanswered request was stuck (a lock, a lane, a hook).
    """

    def send(self, method: str, path: str, payload: Any = None, **options: Any) -> Reply:
        """:meth:`ApiClient.send`; on a timeout, the threads' stacks go to stderr before the error."""
        try:
            return super().send(method, path, payload, **options)
        except Unreachable as err:
            if "timed out" in err.message:
                print(f"{method} {path} timed out; {thread_stacks()}", file=sys.stderr)
            raise


def thread_stacks() -> str:
    """The stack of every thread of this process, each under its thread's name."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    return "the stacks of this process's threads:\n" + "\n".join(
        f"--- {names.get(ident, ident)}\n" + "".join(traceback.format_stack(frame))
        for ident, frame in sys._current_frames().items()
    )


def wait_for_vm_status(
    client: ApiClient, name: str, wanted: set[str], timeout: float = 120
) -> dict[str, Any]:
    """Poll a VM through ``client`` until its status is in ``wanted``; return the VM resource."""
    deadline = time.monotonic() + timeout
    while True:
        vm = client.send("GET", f"/api/v1/vms/{name}").json()
        if vm.get("status") in wanted:
            return vm
        if time.monotonic() > deadline:
            raise AssertionError(f"vm {name} is {vm.get('status')} after {timeout}s, not in {wanted}: {vm}")
        time.sleep(0.2)


@contextmanager
def running_daemon(
    guest: GuestArtifacts | None = None,
    *,
    plugins: Iterable[tuple[str, object]] = (),
    plugin_settings: Mapping[str, str] | None = None,
    **settings: Any,
) -> Iterator[RunningDaemon]:
    """Start volantd on 127.0.0.1 (a free port) with state in a fresh short directory.

    ``plugins`` registers extra in-process plugins as ``(name, module_or_object)``
    after the installed ones (test hypervisors, hook recorders); ``plugin_settings``
    gives plugin settings by variable (``{"VOLANT_QEMU_ACCEL": "tcg"}``), as the
    environment would.

    On exit every VM is deleted, the server stops, any process still naming the
    state directory is killed and the directory is removed (unless the caller gave ``state_dir``:
    it stays the caller's, for another daemon to start on, say).
    """
    given = settings.pop("state_dir", None)
    state = Path(given) if given is not None else Path(tempfile.mkdtemp(prefix="volant-"))
    values: dict[str, Any] = {"state_dir": state, "api_listen": "127.0.0.1:0", **settings}
    if guest is not None:
        values.setdefault("kernel", guest.kernel)
        values.setdefault("initramfs", guest.initramfs)
    extra = tuple(plugins)
    try:
        daemon = build_daemon(load_settings({}, plugin_settings, **values), plugins=load_plugins(extra=extra))
    except BaseException:  # refused settings, say: nothing was started, nothing may stay behind
        if given is None:
            shutil.rmtree(state, ignore_errors=True)
        raise
    daemon.start()
    host, port = daemon.server.address
    running = RunningDaemon(daemon, f"http://{host}:{port}", state, plugins=extra)
    try:
        yield running
    finally:
        try:
            running.daemon.deployments.stop()  # or it would create again the members deleted below
            for vm in running.daemon.orchestrator.list_vms():
                with contextlib.suppress(NotFoundError):  # gone meanwhile (a deployment scaled down)
                    running.daemon.orchestrator.delete_vm(vm.name)
        finally:
            running.daemon.stop()
            kill_mentioning(str(state))
            if given is None:
                shutil.rmtree(state, ignore_errors=True)


@contextmanager
def volantd_process(
    state_dir: Path,
    port: int,
    *,
    env: Mapping[str, str] | None = None,
    binary: Path | None = None,
    command: Sequence[str] | None = None,
    extra_args: Iterable[str] = (),
    preexec: Callable[[], None] | None = None,
) -> Iterator[RunningProcess]:
    """Run the real ``volantd`` executable as a child process on 127.0.0.1:``port``.

    ``binary`` defaults to the one beside this interpreter; ``command`` replaces it with a whole
    command line (e.g. :data:`volant_core.testing.hostvm.HOST_VOLANTD`); ``env`` (the whole
    environment) to this process's; ``extra_args`` are appended to its command
    line; ``preexec`` runs in the child before ``volantd`` starts (e.g. to lower a resource
    limit). Waits until ``/healthz`` answers; its output goes to ``state_dir/volantd.log``.
    On exit the daemon is killed if it still runs; VMs it started are left to the caller
    (they outlive volantd by design).
    """
    program = (
        list(command) if command is not None else [str(binary or Path(sys.executable).with_name("volantd"))]
    )
    argv = [*program, "--listen", f"127.0.0.1:{port}", "--state-dir", str(state_dir), *extra_args]
    with (state_dir / "volantd.log").open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ if env is None else env),
            preexec_fn=preexec,
        )
    running = RunningProcess(process, f"http://127.0.0.1:{port}", state_dir)
    try:
        running.wait_ready()
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)


@dataclass
class RunningProcess:
    """A volantd child process and its URL."""

    process: subprocess.Popen[bytes]
    url: str
    state_dir: Path

    def client(self, timeout: float = 60) -> ApiClient:
        """An API client for this daemon."""
        return ApiClient(self.url, timeout=timeout)

    def wait_ready(self, timeout: float = 30) -> None:
        """Poll ``/healthz`` until it answers; fail early if the process died."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                log = (self.state_dir / "volantd.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"volantd exited with {self.process.returncode}:\n{log}")
            try:
                if self.client(timeout=2).send("GET", "/healthz").status == 200:
                    return
            except ApiError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"volantd did not answer within {timeout}s")
            time.sleep(0.1)
