"""The bridge and its address, through pyroute2 (no ``ip`` subprocess), in the caller's namespace."""

from __future__ import annotations

import ipaddress
from typing import Any

from volant_core.hostnet import link_index, netlink
from volant_core.hostsetup.errors import HostSetupError


def link_kind(name: str) -> str | None:
    """The kind of link ``name`` (``bridge``, ``dummy``, ``""`` for a plain device), None if absent."""
    with netlink(HostSetupError) as ipr:
        index = link_index(ipr, name)
        if index is None:
            return None
        (link,) = ipr.get_links(index)
        info = link.get("IFLA_LINKINFO")
        return str(info.get("IFLA_INFO_KIND") or "") if info is not None else ""


def is_up(name: str) -> bool:
    """Whether link ``name`` is administratively up (False when it does not exist)."""
    with netlink(HostSetupError) as ipr:
        index = link_index(ipr, name)
        if index is None:
            return False
        (link,) = ipr.get_links(index)
        return bool(link["flags"] & 1)


def addresses(name: str) -> list[ipaddress.IPv4Interface]:
    """The IPv4 addresses of link ``name`` (empty when it does not exist)."""
    with netlink(HostSetupError) as ipr:
        index = link_index(ipr, name)
        if index is None:
            return []
        return [
            ipaddress.IPv4Interface(f"{item.get('IFA_ADDRESS')}/{item['prefixlen']}")
            for item in ipr.get_addr(index=index, family=2)
        ]


def _change(what: str, name: str, call: Any) -> None:
    with netlink(HostSetupError) as ipr:
        index = link_index(ipr, name)
        if index is None:
            raise HostSetupError(f"cannot {what}: link {name} does not exist")
        try:
            call(ipr, index)
        except Exception as err:
            raise HostSetupError(f"cannot {what}: {err}") from err


def create_bridge(name: str) -> None:
    """Create bridge ``name`` (down, no address)."""
    with netlink(HostSetupError) as ipr:
        try:
            ipr.link("add", ifname=name, kind="bridge")
        except Exception as err:
            raise HostSetupError(f"cannot create bridge {name}: {err}") from err


def delete_link(name: str) -> None:
    """Remove link ``name``; gone already is fine."""
    with netlink(HostSetupError) as ipr:
        index = link_index(ipr, name)
        if index is not None:
            ipr.link("del", index=index)


def set_up(name: str, up: bool) -> None:
    """Bring link ``name`` up (or down)."""
    _change(
        f"set {name} {'up' if up else 'down'}",
        name,
        lambda ipr, i: ipr.link("set", index=i, state="up" if up else "down"),
    )


def add_address(name: str, interface: ipaddress.IPv4Interface) -> None:
    """Add ``interface`` (address/prefix) to link ``name``."""
    _change(
        f"add {interface} to {name}",
        name,
        lambda ipr, i: ipr.addr(
            "add", index=i, address=str(interface.ip), prefixlen=interface.network.prefixlen
        ),
    )


def remove_address(name: str, interface: ipaddress.IPv4Interface) -> None:
    """Remove ``interface`` from link ``name``; gone already (or no link) is fine."""
    if interface not in addresses(name):
        return
    _change(
        f"remove {interface} from {name}",
        name,
        lambda ipr, i: ipr.addr(
            "del", index=i, address=str(interface.ip), prefixlen=interface.network.prefixlen
        ),
    )
