"""Guest ports published on the host with nftables DNAT (see docs/adr/0021-port-publishing.md).

Everything lives in one table of Volant's own, ``table ip volant_ports``, that nothing else
writes. Each VM that publishes ports has two base chains of its own there:

* ``vm-<name>-pre`` (``type nat hook prerouting priority dstnat``) for connections from other
  hosts and from guests;
* ``vm-<name>-out`` (``type nat hook output priority -100``) for connections made on the host.

Each holds one rule per port: ``fib daddr type local meta l4proto <p> th dport <host port>
dnat to <guest ip>:<guest port>``, i.e. a connection to any of the host's own addresses on that
port goes to the guest; connections through the host to other machines are left alone. The output
chain skips ``127.0.0.0/8``: loopback is not published (it would need the host-wide sysctl
``route_localnet``), so ``127.0.0.1:<port>`` is refused at once rather than hanging.

Every change is one ``nft -f -`` transaction: a VM's chains are written whole or not at all, and
removed as a unit; the table itself is removed once it holds no chain, so a host without published
ports shows no trace of it. :class:`PortTable` reads the table back (``nft -j``) to find what is
published.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from volant_core.errors import VolantError

#: Address family and name of Volant's own table.
FAMILY = "ip"
TABLE = "volant_ports"
#: Chain name prefix and the suffix of each hook's chain.
CHAIN_PREFIX = "vm-"
_HOOKS = {
    "-pre": "type nat hook prerouting priority dstnat; policy accept;",
    "-out": "type nat hook output priority -100; policy accept;",
}
#: Seconds one ``nft`` run may take.
NFT_TIMEOUT = 30.0
#: ``/proc/net`` tables listing the host's sockets, per protocol.
_PROC_TABLES = {"tcp": ("tcp", "tcp6"), "udp": ("udp", "udp6")}
#: Socket state of a listening TCP socket in ``/proc/net/tcp`` (``TCP_LISTEN``).
_TCP_LISTEN = "0A"

Protocol = Literal["tcp", "udp"]


class PortMapError(VolantError):
    """``nft`` is missing or refused a change (nothing of that change was applied)."""


@dataclass(frozen=True)
class PublishedPort:
    """One guest port published on the host: ``<host>:<host_port>`` goes to ``<guest_ip>:<guest_port>``."""

    protocol: Protocol
    host_port: int
    guest_ip: str
    guest_port: int
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (an entry of the API's ``published_ports``)."""
        return asdict(self)


def render_publish(vm: str, ports: Sequence[PublishedPort]) -> str:
    """The ``nft`` script that makes VM ``vm``'s chains hold exactly ``ports`` (at least one)."""
    lines = [f"add table {FAMILY} {TABLE}"]
    for suffix, hook in _HOOKS.items():
        chain = f"{FAMILY} {TABLE} {CHAIN_PREFIX}{vm}{suffix}"
        lines += [f"add chain {chain} {{ {hook} }}", f"flush chain {chain}"]
        local = "ip daddr != 127.0.0.0/8 " if suffix == "-out" else ""
        for port in ports:
            lines.append(
                f"add rule {chain} {local}fib daddr type local meta l4proto {port.protocol} "
                f"th dport {port.host_port} dnat to {port.guest_ip}:{port.guest_port}"
            )
    return "\n".join(lines) + "\n"


def render_unpublish(vms: Iterable[str]) -> str:
    """The ``nft`` script that removes the chains of ``vms`` (absent ones are fine)."""
    lines = [f"add table {FAMILY} {TABLE}"]
    for vm in vms:
        for suffix, hook in _HOOKS.items():
            qualified = f"{FAMILY} {TABLE} {CHAIN_PREFIX}{vm}{suffix}"
            lines += [f"add chain {qualified} {{ {hook} }}", f"delete chain {qualified}"]
    return "\n".join(lines) + "\n"


def listening(protocol: Protocol, port: int, proc: Path = Path("/proc/net")) -> bool:
    """Whether a socket of this network namespace listens on ``port`` (TCP) or is bound to it (UDP)."""
    for table in _PROC_TABLES[protocol]:
        try:
            rows = (proc / table).read_text().splitlines()[1:]
        except FileNotFoundError:  # no IPv6 in this kernel
            continue
        for row in rows:
            fields = row.split()
            local, state = fields[1], fields[3]
            if int(local.rsplit(":", 1)[1], 16) == port and (protocol == "udp" or state == _TCP_LISTEN):
                return True
    return False


class PortTable:
    """Volant's nftables table of published ports, changed through the ``nft`` binary."""

    def __init__(self, nft: str = "nft") -> None:
        """Use the ``nft`` found as ``nft`` (on ``PATH`` by default)."""
        self._nft = nft
        self._lock = threading.Lock()  # removing the empty table must not race a publish

    def publish(self, vm: str, ports: Sequence[PublishedPort]) -> None:
        """Make VM ``vm``'s rules publish exactly ``ports``, atomically (none: :meth:`unpublish`)."""
        if not ports:
            self.unpublish([vm])
            return
        with self._lock:
            self._run(["-f", "-"], render_publish(vm, ports))

    def unpublish(self, vms: Iterable[str]) -> None:
        """Remove every rule of ``vms``, atomically; VMs without rules are fine. The table goes too
        once no VM publishes anything.
        """
        vms = list(vms)
        if not vms:
            return
        with self._lock:
            self._run(["-f", "-"], render_unpublish(vms))
            if not self.published():
                self._run(["delete", "table", FAMILY, TABLE])

    def published(self) -> dict[str, list[PublishedPort]]:
        """What the table publishes now, per VM (read from the kernel; empty without the table)."""
        if shutil.which(self._nft) is None:
            return {}  # without nft nobody can have published anything through it
        try:
            out = self._run(["-j", "list", "table", FAMILY, TABLE])
        except PortMapError as err:
            if "No such file or directory" in err.message:
                return {}
            raise
        found: dict[str, list[PublishedPort]] = {}
        for item in json.loads(out)["nftables"]:
            if "chain" in item and (owner := _owner(item["chain"]["name"])) is not None:
                found.setdefault(owner[0], [])
            elif (
                "rule" in item and (owner := _owner(item["rule"]["chain"])) is not None and owner[1] == "-pre"
            ):
                found.setdefault(owner[0], []).append(_parse_rule(item["rule"]))  # -out holds the same
        return found

    def _run(self, args: list[str], script: str | None = None) -> str:
        """Run ``nft args`` (``script`` on stdin); its output, or :class:`PortMapError`."""
        try:
            done = subprocess.run(
                [self._nft, *args], input=script, capture_output=True, text=True, timeout=NFT_TIMEOUT
            )
        except FileNotFoundError:
            raise PortMapError(
                f"publishing ports needs nftables: {self._nft!r} was not found (install the nftables package)"
            ) from None
        if done.returncode != 0:
            raise PortMapError(f"nft {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout


def _owner(chain: str) -> tuple[str, str] | None:
    """The VM a chain of the table belongs to and the chain's hook suffix (None for other chains)."""
    for suffix in _HOOKS:
        if chain.startswith(CHAIN_PREFIX) and chain.endswith(suffix):
            return chain[len(CHAIN_PREFIX) : -len(suffix)], suffix
    return None


def _parse_rule(rule: Mapping[str, Any]) -> PublishedPort:
    """The port a rule written by :func:`render_publish` publishes (from ``nft -j`` output)."""
    protocol: Any = None
    host_port = 0
    target: Mapping[str, Any] = {}
    for expr in rule["expr"]:
        match = expr.get("match")
        if match is not None:
            left = match["left"]
            if left.get("meta", {}).get("key") == "l4proto":
                protocol = match["right"]
            elif left.get("payload", {}).get("field") == "dport":
                host_port = int(match["right"])
                if left["payload"]["protocol"] != "th":  # nft shows the rule as ``tcp dport ...``
                    protocol = left["payload"]["protocol"]
        elif "dnat" in expr:
            target = expr["dnat"]
    return PublishedPort(
        protocol=protocol,
        host_port=host_port,
        guest_ip=str(target.get("addr")),
        guest_port=int(target["port"]),
    )
