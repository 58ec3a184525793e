"""The DHCP servers of one daemon, one per bridge, and their reconciliation against the VMs.

A server's directory is named after its bridge under the plugin's state directory, so a daemon
started with another ``bridge`` setting still finds (and cleans up) the servers of the old one.
"""

from __future__ import annotations

import threading
from pathlib import Path

from volant_core.sdk import PluginContext, VMStatus, VMView

from .dnsmasq import DnsmasqServer, Host, ServerConfig

#: States in which a VM holds its tap, and so its DHCP host entry.
ATTACHED_STATES = frozenset({VMStatus.STARTING, VMStatus.RUNNING, VMStatus.STOPPING})


class DhcpServers:
    """Every DHCP server of one plugin context (one daemon), by bridge; thread-safe."""

    def __init__(self, context: PluginContext, mode: str, binary: str) -> None:
        """Keep servers under ``context.state_dir`` for VMs of network mode ``mode``, run with ``binary``."""
        self._context = context
        self._mode = mode
        self._binary = binary
        self._lock = threading.Lock()
        self._servers: dict[str, DnsmasqServer] = {}

    def server(self, bridge: str) -> DnsmasqServer:
        """The server of ``bridge`` (made on first use; nothing starts until it serves a host)."""
        with self._lock:
            if bridge not in self._servers:
                settings = self._context.settings
                config = ServerConfig(bridge, settings.subnet, settings.host_ip, self._binary)
                self._servers[bridge] = DnsmasqServer(self._directory / bridge, config, self._notify)
            return self._servers[bridge]

    @property
    def _directory(self) -> Path:
        return self._context.state_dir

    def _notify(self, message: str, error: bool) -> None:
        (self._context.log.error if error else self._context.log.info)("%s", message)
        self._context.publish(message, error=error)

    def known_bridges(self) -> list[str]:
        """Bridges with a server directory on disk (a server that serves, or did when volantd stopped)."""
        if not self._directory.is_dir():
            return []
        return sorted(entry.name for entry in self._directory.iterdir() if (entry / "hosts.json").exists())

    def add(self, bridge: str, vm: VMView) -> None:
        """Serve ``vm``'s MAC with its address on ``bridge``."""
        if vm.ip_address is None:
            raise ValueError(f"vm {vm.name} has no address to serve")
        self.server(bridge).add(vm.name, Host(vm.mac_address, vm.ip_address))

    def remove(self, vm: VMView) -> None:
        """Stop serving ``vm`` on whichever bridge serves it (none is fine)."""
        for bridge in self.known_bridges():
            self.server(bridge).remove(vm.name)

    def reconcile(self, vms: list[VMView]) -> None:
        """At daemon start: serve exactly the attached VMs of this mode that a server served, adopting
        the dnsmasq still running for each bridge (or starting it again); stop the servers left with
        no VM.
        """
        attached = {
            vm.name: Host(vm.mac_address, vm.ip_address)
            for vm in vms
            if vm.network_mode == self._mode and vm.status in ATTACHED_STATES and vm.ip_address
        }
        for bridge in self.known_bridges():
            server = self.server(bridge)
            server.sync({name: host for name, host in server.hosts().items() if attached.get(name) == host})

    def release(self) -> None:
        """Stop supervising every server, leaving dnsmasq running for the VMs (volantd stops)."""
        with self._lock:
            servers = list(self._servers.values())
        for server in servers:
            server.release()


_pools: dict[Path, DhcpServers] = {}
_pools_lock = threading.Lock()


def servers_of(context: PluginContext, mode: str, binary: str) -> DhcpServers:
    """The servers of the daemon ``context`` belongs to (one set per state directory)."""
    with _pools_lock:
        pool = _pools.get(context.state_dir)
        if pool is None:
            pool = _pools[context.state_dir] = DhcpServers(context, mode, binary)
        return pool


def forget(context: PluginContext) -> DhcpServers | None:
    """Drop (and return) the servers of ``context``'s daemon, which stops."""
    with _pools_lock:
        return _pools.pop(context.state_dir, None)
