"""Host network devices for network-mode plugins: a VM's tap device on a bridge, made with pyroute2.

Shared through :mod:`volant_core.sdk` so that every mode creates, names and removes taps the same
way (a mode never imports another mode). Every call works in the network namespace of the calling
thread, and needs ``CAP_NET_ADMIN`` there. pyroute2 comes with ``volant-core[network]``; without
it each call raises :class:`~volant_core.errors.PluginError` saying what to install.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from volant_core.errors import LaunchError, PluginError, VolantError
from volant_core.launch import NicSpec
from volant_core.netdev import tap_name

#: The clone device a process opens to attach to a tap, and the ioctl flags of a tap attachment:
#: ``TUNSETIFF`` with ``IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`` (as QEMU asks for itself).
TUN_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA
TAP_FLAGS = 0x0002 | 0x1000 | 0x4000
#: First octet of a tap's own MAC: locally administered, unicast, never that of a guest (``02:``).
HOST_MAC_PREFIX = "fe"


@dataclass(frozen=True)
class BridgeState:
    """What a bridge looks like now: whether it is up, its MTU and its IPv4 addresses (``ip/prefix``)."""

    name: str
    up: bool
    mtu: int
    addresses: tuple[ipaddress.IPv4Interface, ...]


@contextlib.contextmanager
def netlink(error: type[VolantError] = PluginError) -> Iterator[Any]:
    """A pyroute2 ``IPRoute`` of the calling thread's network namespace, closed afterwards; ``error``
    (with what to install) when pyroute2 is missing.
    """
    try:
        from pyroute2 import IPRoute
    except ImportError:
        raise error("pyroute2 is not installed: pip install 'volant-core[network]'") from None
    ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def link_index(ipr: Any, name: str) -> int | None:
    """The index of link ``name`` as ``ipr`` sees it, or None when there is none."""
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def host_mac(guest_mac: str) -> str:
    """The MAC of the host side of a tap: the guest's with its first octet replaced by ``fe``.

    Distinct from the guest's (a bridge must not learn the guest's address on its own port) and
    stable for a VM, so a recreated tap keeps it.
    """
    octets = guest_mac.lower().split(":")
    if len(octets) != 6:
        raise ValueError(f"{guest_mac!r} is not a MAC address")
    return ":".join((HOST_MAC_PREFIX, *octets[1:]))


def bridge_state(bridge: str) -> BridgeState | None:
    """The state of ``bridge``, or None when no bridge of that name exists."""
    with netlink() as ipr:
        index = link_index(ipr, bridge)
        if index is None:
            return None
        (link,) = ipr.get_links(index)
        info = link.get("IFLA_LINKINFO")
        if info is None or info.get("IFLA_INFO_KIND") != "bridge":
            return None
        addresses = tuple(
            ipaddress.IPv4Interface(f"{address.get('IFA_ADDRESS')}/{address['prefixlen']}")
            for address in ipr.get_addr(index=index, family=2)
        )
        return BridgeState(
            bridge,
            link.get("IFLA_OPERSTATE") != "DOWN" and bool(link["flags"] & 1),
            int(link.get("IFLA_MTU")),
            addresses,
        )


def create_tap(
    name: str, bridge: str, *, mac: str | None = None, mtu: int | None = None, setting: str | None = None
) -> None:
    """Create tap ``name`` with the host-side ``mac``, enslave it to ``bridge`` and bring it up.

    A stale link of that name (left by a crash) is removed first. ``mtu`` defaults to the
    bridge's; ``setting`` is the setting naming the bridge (for the error when it is missing). On
    failure nothing of the tap remains and :class:`PluginError` names what failed.
    """
    state = bridge_state(bridge)
    if state is None:
        other = f" or name an existing one with {setting}" if setting else ""
        raise PluginError(f"bridge {bridge} does not exist; create it with `volar setup` (as root){other}")
    delete_link(name)
    with netlink() as ipr:
        try:
            ipr.link("add", ifname=name, kind="tuntap", mode="tap")
            index = link_index(ipr, name)
            changes: dict[str, Any] = {"mtu": mtu or state.mtu}
            if mac is not None:
                changes["address"] = mac
            ipr.link("set", index=index, **changes)
            ipr.link("set", index=index, master=link_index(ipr, bridge))
            ipr.link("set", index=index, state="up")
        except Exception as err:
            with contextlib.suppress(Exception):
                if (index := link_index(ipr, name)) is not None:
                    ipr.link("del", index=index)
            raise PluginError(f"cannot create tap {name} on bridge {bridge}: {err}") from err


def open_tap(name: str) -> int:
    """A descriptor attached to the existing tap ``name``, for a VMM that cannot open
    ``/dev/net/tun`` itself (it runs unprivileged): :class:`LaunchError` when it cannot be opened.
    """
    descriptor = os.open(TUN_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(descriptor, TUNSETIFF, struct.pack("16sH", name.encode(), TAP_FLAGS))
    except OSError as err:
        os.close(descriptor)
        raise LaunchError(f"cannot attach to tap {name}: {err}") from err
    return descriptor


def attach_vm(vm_name: str, guest_mac: str, bridge: str, *, setting: str) -> NicSpec:
    """Give VM ``vm_name`` its tap on ``bridge`` (named by ``setting``) and describe its NIC: the
    network modes with a tap per VM share this.
    """
    tap = tap_name(vm_name)
    mac = host_mac(guest_mac)
    create_tap(tap, bridge, mac=mac, setting=setting)
    return NicSpec(tap=tap, mac=guest_mac, host_mac=mac)


def detach_vm(vm_name: str) -> None:
    """Remove the tap :func:`attach_vm` gave VM ``vm_name`` (gone already is fine)."""
    delete_link(tap_name(vm_name))


def delete_link(name: str) -> bool:
    """Remove link ``name``; True when it existed. A missing link is not an error (idempotent)."""
    with netlink() as ipr:
        index = link_index(ipr, name)
        if index is None:
            return False
        with contextlib.suppress(Exception):
            ipr.link("set", index=index, state="down")
        try:
            ipr.link("del", index=index)
        except Exception as err:
            if link_index(ipr, name) is not None:
                raise PluginError(f"cannot remove link {name}: {err}") from err
        return True


def link_exists(name: str) -> bool:
    """Whether a link called ``name`` exists in the calling thread's network namespace."""
    with netlink() as ipr:
        return link_index(ipr, name) is not None
