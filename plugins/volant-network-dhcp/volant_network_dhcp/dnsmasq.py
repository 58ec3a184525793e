"""One dnsmasq DHCP server for one bridge: its files, its static hosts and its supervised process.

Everything lives in the server's own directory (``<plugin state dir>/<bridge>/``):

* ``hosts.json``: the VMs served (name -> MAC and address), the source of truth;
* ``dnsmasq.conf``: the configuration with one ``dhcp-host=mac,ip,infinite`` line per VM, written
  before every start (so it is what the running dnsmasq read);
* ``leases``, ``dnsmasq.pid``, ``dnsmasq.log``: dnsmasq's lease file, pid file and log.

dnsmasq answers only the MACs listed (``dhcp-range=<network>,static``) with the address the core's
IPAM leased to that VM, for ever (``infinite``), and serves no DNS (``port=0``). When the VMs served
change, it is restarted (in milliseconds) rather than sent SIGHUP: it reads its configuration as
root, but re-reads a ``dhcp-hostsfile`` only after dropping to its own user, who may not reach the
state directory; and a SIGHUP would not drop the in-memory lease of a VM gone, which would keep
its address from the next VM leased it. It runs in a session of its own so that it outlives
volantd, like the VMs it serves; a later daemon finds it again by its pid file and its command
line (:meth:`DnsmasqServer.adopt`), never starting a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from volant_core.sdk import AdoptedProcess, ChildProcess, PluginError, VmmProcess, read_cmdline

#: Where dnsmasq-base installs dnsmasq; searched beside PATH (``/usr/sbin`` is not in every user's PATH).
SYSTEM_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
#: Longest wait for a started dnsmasq to write its pid file.
START_TIMEOUT = 10.0
#: Longest wait for dnsmasq to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 5.0
#: How often the supervisor looks whether an adopted dnsmasq still runs.
WATCH_INTERVAL = 0.5
#: Pauses between restarts of a dnsmasq that keeps dying: doubling from the first up to the last.
RESTART_BACKOFF = (0.5, 30.0)

#: ``notify(message, error)``: something a user should hear about (a restart, a failure).
Notify = Callable[[str, bool], None]


@dataclass(frozen=True)
class Host:
    """A VM that dnsmasq serves: its NIC's MAC and the address the core leased to it."""

    mac: str
    ip: str


@dataclass(frozen=True)
class ServerConfig:
    """What one server serves: on ``bridge``, addresses of ``network``, with ``router`` as the gateway."""

    bridge: str
    network: IPv4Network
    router: IPv4Address
    binary: str = "dnsmasq"


def find_binary(binary: str) -> str | None:
    """The path of the dnsmasq ``binary`` (a path, or a name looked up in PATH and the sbin dirs)."""
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *SYSTEM_DIRS])
    return shutil.which(binary, path=search)


def render_config(config: ServerConfig, directory: Path, hosts: Mapping[str, Host]) -> str:
    """The ``dnsmasq.conf`` of a server whose files are in ``directory``, serving ``hosts``: one
    static, never-expiring lease per VM.
    """
    lines = [
        "# Written by volant-network-dhcp before every start; edits are lost.",
        f"interface={config.bridge}",
        "bind-interfaces",
        "except-interface=lo",
        "port=0",
        "no-resolv",
        "no-hosts",
        f"dhcp-range={config.network.network_address},static,{config.network.netmask},infinite",
        f"dhcp-option=option:router,{config.router}",
        "dhcp-authoritative",
        f"dhcp-leasefile={directory / 'leases'}",
        f"pid-file={directory / 'dnsmasq.pid'}",
        f"log-facility={directory / 'dnsmasq.log'}",
        "log-dhcp",
        *(f"dhcp-host={host.mac},{host.ip},infinite" for _name, host in sorted(hosts.items())),
    ]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    """Replace ``path`` atomically (a crash leaves the old content or the new, never half)."""
    partial = path.with_name(path.name + ".new")
    partial.write_text(text)
    partial.replace(path)


class DnsmasqServer:
    """The DHCP server of one bridge; thread-safe. See the module docstring."""

    def __init__(self, directory: Path, config: ServerConfig, notify: Notify | None = None) -> None:
        """Serve ``config`` from ``directory`` (created on the first host); nothing starts yet."""
        self.directory = directory
        self.config = config
        self._notify = notify or (lambda _message, _error: None)
        self._lock = threading.RLock()
        self._process: VmmProcess | None = None
        self._watcher: threading.Thread | None = None
        self._watching = threading.Event()

    # ------------------------------------------------------------------ files

    @property
    def conf_file(self) -> Path:
        """The configuration file (its path is on dnsmasq's command line: that is how it is recognised)."""
        return self.directory / "dnsmasq.conf"

    @property
    def pid_file(self) -> Path:
        """dnsmasq's pid file."""
        return self.directory / "dnsmasq.pid"

    @property
    def log_file(self) -> Path:
        """dnsmasq's log (start-up errors and every DHCP exchange)."""
        return self.directory / "dnsmasq.log"

    @property
    def lease_file(self) -> Path:
        """dnsmasq's lease file."""
        return self.directory / "leases"

    def hosts(self) -> dict[str, Host]:
        """The VMs served, by name."""
        try:
            stored = json.loads((self.directory / "hosts.json").read_text())
        except FileNotFoundError:
            return {}
        return {name: Host(**entry) for name, entry in stored.items()}

    def _save_hosts(self, hosts: Mapping[str, Host]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        entries = {name: {"mac": host.mac, "ip": host.ip} for name, host in hosts.items()}
        _write(self.directory / "hosts.json", json.dumps(entries, indent=2, sort_keys=True))

    # ------------------------------------------------------------------ hosts

    def add(self, name: str, host: Host) -> None:
        """Serve ``host`` as VM ``name``: record it and (re)start dnsmasq with it.

        On failure the host is not recorded, and a dnsmasq started for it alone is stopped again.
        """
        with self._lock:
            hosts = self.hosts()
            if hosts.get(name) == host and self.running():
                return
            taken = [other for other, known in hosts.items() if other != name and host.ip == known.ip]
            if taken:
                raise PluginError(
                    f"{host.ip} is served to VM {taken[0]} already on bridge {self.config.bridge}"
                )
            before = dict(hosts)
            hosts[name] = host
            try:
                self.sync(hosts)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.sync(before)
                raise

    def remove(self, name: str) -> None:
        """Stop serving VM ``name`` (unknown is fine): dnsmasq restarts without it and its lease (a
        later VM given the same address must get it), or stops, with its files, after the last VM.
        """
        with self._lock:
            hosts = self.hosts()
            if hosts.pop(name, None) is not None:
                self.sync(hosts)

    def sync(self, hosts: Mapping[str, Host]) -> None:
        """Serve exactly ``hosts``: keep (or adopt) the dnsmasq that serves them already, else restart
        it with them, dropping the leases of hosts gone; with no hosts, stop it and remove every file.
        """
        with self._lock:
            known = self.hosts()
            if not hosts:
                self.stop()
                shutil.rmtree(self.directory, ignore_errors=True)
                return
            dropped = tuple(host for name, host in known.items() if hosts.get(name) != host)
            self._save_hosts(hosts)
            if not self.running():
                self._process = self.adopt()
            wanted = render_config(self.config, self.directory, hosts)
            if not self.running() or self._started_with() != wanted:
                self.stop()
                self._prune_leases(dropped)
                self._process = self._start()
            self._supervise()

    def _started_with(self) -> str | None:
        """The configuration the running dnsmasq read (written just before it started)."""
        try:
            return self.conf_file.read_text()
        except FileNotFoundError:
            return None

    def _prune_leases(self, gone: tuple[Host, ...]) -> None:
        try:
            lines = self.lease_file.read_text().splitlines()
        except FileNotFoundError:
            return
        macs = {host.mac.lower() for host in gone}
        ips = {host.ip for host in gone}
        kept = [
            line
            for line in lines
            if len(fields := line.split()) < 3 or (fields[1].lower() not in macs and fields[2] not in ips)
        ]
        _write(self.lease_file, "".join(f"{line}\n" for line in kept))

    # ---------------------------------------------------------------- process

    def running(self) -> bool:
        """Whether the dnsmasq this server started or adopted runs."""
        return self._process is not None and self._process.alive()

    @property
    def pid(self) -> int | None:
        """The pid of the running dnsmasq, if any."""
        return self._process.pid if self.running() and self._process is not None else None

    def adopt(self) -> AdoptedProcess | None:
        """The dnsmasq of this server still running from an earlier daemon: the process the pid file
        names, if its command line is dnsmasq with this server's configuration file; else None.
        """
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        argv = read_cmdline(pid)
        if not argv or Path(argv[0]).name != "dnsmasq" or f"--conf-file={self.conf_file}" not in argv:
            return None
        return AdoptedProcess.attach(pid)

    def _start(self) -> ChildProcess:
        binary = find_binary(self.config.binary)
        if binary is None:
            raise PluginError(f"{self.config.binary} is not installed: apt-get install dnsmasq-base")
        self.directory.mkdir(parents=True, exist_ok=True)
        _write(self.conf_file, render_config(self.config, self.directory, self.hosts()))
        self.pid_file.unlink(missing_ok=True)
        self.lease_file.touch()
        with self.log_file.open("ab") as log:
            popen = subprocess.Popen(
                [binary, f"--conf-file={self.conf_file}", "--keep-in-foreground"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives volantd, like the VMs it serves
            )
        child = ChildProcess(popen)
        deadline = time.monotonic() + START_TIMEOUT
        while self._pid_file_names() != popen.pid:
            status = child.wait(0.05)
            if status is not None or time.monotonic() > deadline:
                child.kill()
                child.wait(STOP_TIMEOUT)
                raise PluginError(
                    f"dnsmasq for bridge {self.config.bridge} did not start (exit status {status}): "
                    f"{self._log_tail()}"
                )
        return child

    def _pid_file_names(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return "no log"
        return " | ".join(lines[-3:]) or "no output"

    def stop(self) -> None:
        """Stop dnsmasq (and its supervision): SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT`."""
        with self._lock:
            if self._process is None:
                self._process = self.adopt()
            self.release()
            process, self._process = self._process, None
            if process is None:
                return
            if process.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
            if process.wait(STOP_TIMEOUT) is None:
                process.kill()
                process.wait(STOP_TIMEOUT)
            self.pid_file.unlink(missing_ok=True)

    # ------------------------------------------------------------ supervision

    def _supervise(self) -> None:
        if self._watcher is not None and self._watcher.is_alive():
            return
        self._watching.set()
        self._watcher = threading.Thread(
            target=self._watch, name=f"dnsmasq-{self.config.bridge}", daemon=True
        )
        self._watcher.start()

    def release(self) -> None:
        """Stop supervising, leaving dnsmasq running (volantd stops; the next one adopts it)."""
        self._watching.clear()
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join()

    def _watch(self) -> None:
        pause = RESTART_BACKOFF[0]
        while self._watching.is_set():
            process = self._process
            if process is None or process.wait(WATCH_INTERVAL) is None:
                continue
            # Never block on the lock: stop() holds it while it waits for this thread to end.
            if not self._lock.acquire(timeout=WATCH_INTERVAL):
                continue
            try:
                if not self._watching.is_set() or self._process is not process:
                    continue
                self._notify(f"dnsmasq for bridge {self.config.bridge} exited: {self._log_tail()}", True)
                try:
                    self._process = self._start()
                except PluginError as err:
                    self._notify(f"{err}; trying again in {pause:g}s", True)
                else:
                    self._notify(f"dnsmasq for bridge {self.config.bridge} restarted", False)
                    pause = RESTART_BACKOFF[0]
                    continue
            finally:
                self._lock.release()
            if not _sleep_while(self._watching, pause):
                return
            pause = min(pause * 2, RESTART_BACKOFF[1])


def _sleep_while(flag: threading.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``flag`` is cleared first; whether it is still set."""
    deadline = time.monotonic() + seconds
    while flag.is_set() and time.monotonic() < deadline:
        time.sleep(min(0.1, deadline - time.monotonic()))
    return flag.is_set()
