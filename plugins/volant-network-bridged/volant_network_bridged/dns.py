"""Which DNS servers a bridged guest is told to use: the ``dns`` setting, else the host's own."""

from __future__ import annotations

import ipaddress
from pathlib import Path

#: Most name servers the guest's resolver uses (glibc and musl read the first three).
MAX_NAMESERVERS = 3
#: Where the host's resolver configuration lives.
HOST_RESOLV_CONF = Path("/etc/resolv.conf")


def parse_servers(text: str) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses of a comma-separated list (empty: none); ValueError saying which entry is
    wrong, or that there are more than :data:`MAX_NAMESERVERS` (a resolver would ignore the rest).
    """
    servers = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            servers.append(ipaddress.IPv4Address(entry))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IPv4 address (e.g. 192.168.127.1,9.9.9.9)") from None
    if len(servers) > MAX_NAMESERVERS:
        raise ValueError(f"at most {MAX_NAMESERVERS} servers (a guest's resolver ignores the others)")
    return tuple(servers)


def host_nameservers(resolv_conf: Path | None = None) -> tuple[ipaddress.IPv4Address, ...]:
    """The host's IPv4 name servers a guest can reach: those of ``resolv_conf`` (default
    :data:`HOST_RESOLV_CONF`) except loopback ones (a local stub such as systemd-resolved's
    127.0.0.53 answers only the host), at most :data:`MAX_NAMESERVERS`; none when the file is missing.
    """
    try:
        lines = (resolv_conf or HOST_RESOLV_CONF).read_text().splitlines()
    except FileNotFoundError:
        return ()
    servers = []
    for line in lines:
        words = line.split()
        if len(words) < 2 or words[0] != "nameserver":
            continue
        try:
            server = ipaddress.ip_address(words[1])
        except ValueError:
            continue
        if isinstance(server, ipaddress.IPv4Address) and not server.is_loopback and server not in servers:
            servers.append(server)
    return tuple(servers[:MAX_NAMESERVERS])
