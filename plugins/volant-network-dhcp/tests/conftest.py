"""Fixtures of volant-network-dhcp's tests: a bridge in a namespace of the test's own, a real DHCP
client (busybox udhcpc) in a second namespace plugged into that bridge, and a dnsmasq server.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from volant_network_dhcp.dnsmasq import DnsmasqServer, ServerConfig, find_binary

from volant_core.testing.netns import NetworkNamespace, network_namespace

BRIDGE = "tbr0"
NETWORK = ipaddress.IPv4Network("10.77.0.0/24")
ROUTER = ipaddress.IPv4Address("10.77.0.1")
#: Records what udhcpc was given (``$ip/$mask $router``) to the file named by $LEASE_OUT.
CLIENT_SCRIPT = '#!/bin/sh\n[ "$1" = bound ] && echo "$ip/$mask $router" > "$LEASE_OUT"\nexit 0\n'


@dataclass
class Lan:
    """A bridge with the router's address in ``server_ns``; DHCP clients ask from ``client_ns``."""

    server_ns: NetworkNamespace
    client_ns: NetworkNamespace
    scratch: Path
    asked: int = 0

    def ask(self, mac: str, attempts: int = 3) -> str | None:
        """Plug a NIC with ``mac`` into the bridge, run udhcpc on it and unplug it: what the server
        leased (``ip/prefix router``), or None when no server answered.
        """
        self.asked += 1
        port, nic = f"tp{self.asked}", f"tc{self.asked}"
        ipr = self.server_ns.ipr
        ipr.link("add", ifname=port, kind="veth", peer={"ifname": nic})
        try:
            (bridge,) = ipr.link_lookup(ifname=BRIDGE)
            (port_index,) = ipr.link_lookup(ifname=port)
            ipr.link("set", index=port_index, master=bridge, state="up")
            (nic_index,) = ipr.link_lookup(ifname=nic)
            ipr.link("set", index=nic_index, net_ns_fd=self.client_ns.name)
            (inside,) = self.client_ns.ipr.link_lookup(ifname=nic)
            self.client_ns.ipr.link("set", index=inside, address=mac, state="up")
            out = self.scratch / f"lease-{self.asked}"
            argv = ["busybox", "udhcpc", "-i", nic, "-f", "-q", "-n", "-t", str(attempts), "-T", "1"]
            client = self.client_ns.popen(
                [*argv, "-s", str(self.scratch / "script")],
                env={**os.environ, "LEASE_OUT": str(out)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            client.wait(60)
            return out.read_text().strip() if client.returncode == 0 and out.exists() else None
        finally:
            ipr.link("del", index=ipr.link_lookup(ifname=port)[0])


@pytest.fixture
def lan() -> Iterator[Lan]:
    """A bridge ``tbr0`` with 10.77.0.1/24 and a client namespace; both checked for leaks at the end."""
    if shutil.which("busybox") is None or find_binary("dnsmasq") is None:
        pytest.skip("needs busybox and dnsmasq (apt-get install busybox-static dnsmasq-base)")
    scratch = Path(tempfile.mkdtemp(prefix="dhcp-lan-"))
    script = scratch / "script"
    script.write_text(CLIENT_SCRIPT)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    try:
        with network_namespace() as server_ns, network_namespace() as client_ns:
            ipr = server_ns.ipr
            ipr.link("add", ifname=BRIDGE, kind="bridge")
            (index,) = ipr.link_lookup(ifname=BRIDGE)
            ipr.addr("add", index=index, address=str(ROUTER), prefixlen=NETWORK.prefixlen)
            ipr.link("set", index=index, state="up")
            try:
                yield Lan(server_ns, client_ns, scratch)
            finally:
                ipr.link("del", index=index)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A fresh directory for a server's files, under one only root may enter (as a state directory
    may be: dnsmasq, which drops to its own user, must not need to read anything there).
    """
    path = Path(tempfile.mkdtemp(prefix="dhcp-srv-"))
    try:
        yield path / BRIDGE
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def new_server(lan: Lan, server_dir: Path) -> Iterator[Callable[..., DnsmasqServer]]:
    """``new_server(binary="dnsmasq")``: a server object of the ``lan`` bridge over ``server_dir``
    (a second one over the same files is what a restarted daemon makes). The test runs inside the
    bridge's namespace; every dnsmasq is stopped at the end.
    """
    made: list[DnsmasqServer] = []

    def make(binary: str = "dnsmasq") -> DnsmasqServer:
        made.append(DnsmasqServer(server_dir, ServerConfig(BRIDGE, NETWORK, ROUTER, binary)))
        return made[-1]

    with lan.server_ns.enter():
        try:
            yield make
        finally:
            for server in reversed(made):
                server.stop()
