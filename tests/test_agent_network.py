"""kestrel's network setup (``volant_core.agent.network``) on real links in a network namespace:
what the launch parameters say is applied, applying it again (or over what a kernel's ``ip=``
set) changes nothing, and the files land in every root without following links.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from volant_core.agent import network
from volant_core.agent.constants import BUSYBOX
from volant_core.testing.netns import NetworkNamespace, network_namespace
from volant_core.testing.pytest_plugin import require_tool

ADDRESS = ipaddress.IPv4Interface("10.94.0.5/24")
GATEWAY = ipaddress.IPv4Address("10.94.0.1")
NIC = "eth0"


@pytest.fixture
def nic() -> Iterator[NetworkNamespace]:
    """A namespace with a down veth ``eth0`` (its peer ``eth0-peer``), as a guest's NIC before kestrel."""
    require_tool(BUSYBOX, "busybox-static")
    with network_namespace("volant-kestrel") as ns:
        ns.ipr.link("add", ifname=NIC, kind="veth", peer="eth0-peer")
        (peer,) = ns.ipr.link_lookup(ifname="eth0-peer")
        ns.ipr.link("set", index=peer, state="up")
        yield ns
        ns.ipr.link("del", index=ns.ipr.link_lookup(ifname=NIC)[0])


def state(ns: NetworkNamespace) -> tuple[list[str], list[str]]:
    """The NIC's IPv4 addresses and the namespace's default routes' gateways."""
    (index,) = ns.ipr.link_lookup(ifname=NIC)
    addresses = [f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}" for a in ns.ipr.get_addr(index=index, family=2)]
    gateways = [r.get("RTA_GATEWAY") for r in ns.ipr.get_routes(family=2) if r["dst_len"] == 0]
    return addresses, gateways


def test_the_launch_parameters_are_read() -> None:
    cmdline = (
        "console=ttyS0 volant.ip=10.94.0.5/24 volant.gw=10.94.0.1 volant.dns=10.94.0.1,9.9.9.9 "
        "volant.hostname=web-1 volant.name=web-1\n"
    )
    assert network.NetworkConfig.from_cmdline(cmdline) == network.NetworkConfig(
        ADDRESS,
        GATEWAY,
        (ipaddress.IPv4Address("10.94.0.1"), ipaddress.IPv4Address("9.9.9.9")),
        "web-1",
    )
    assert network.NetworkConfig.from_cmdline("console=ttyS0") == network.NetworkConfig()
    with pytest.raises(ValueError, match=re.escape("10.94.0.300")):
        network.NetworkConfig.from_cmdline("volant.ip=10.94.0.5/24 volant.dns=10.94.0.300")


def test_configuring_twice_changes_nothing(nic: NetworkNamespace) -> None:
    with nic.enter():
        network.configure_nic(ADDRESS, GATEWAY, NIC)
        first = state(nic)
        network.configure_nic(ADDRESS, GATEWAY, NIC)
    assert first == state(nic) == (["10.94.0.5/24"], ["10.94.0.1"])


def test_an_address_and_route_the_kernel_set_from_ip_are_kept(nic: NetworkNamespace) -> None:
    """What a kernel honouring ``ip=10.94.0.5::10.94.0.1:255.255.255.0::eth0:off`` leaves behind."""
    (index,) = nic.ipr.link_lookup(ifname=NIC)
    nic.ipr.link("set", index=index, state="up")
    nic.ipr.addr("add", index=index, address=str(ADDRESS.ip), prefixlen=ADDRESS.network.prefixlen)
    nic.ipr.route("add", dst="0.0.0.0/0", gateway=str(GATEWAY), oif=index)
    with nic.enter():
        network.configure_nic(ADDRESS, GATEWAY, NIC)
    assert state(nic) == (["10.94.0.5/24"], ["10.94.0.1"])


def test_files_are_written_in_every_root_replacing_links(tmp_path: Path) -> None:
    base, workload = tmp_path / "base", tmp_path / "workload"
    base.mkdir()
    (workload / "etc").mkdir(parents=True)
    outside = tmp_path / "stub-resolv.conf"
    outside.write_text("nameserver 127.0.0.53\n")
    (workload / "etc" / "resolv.conf").symlink_to(outside)
    config = network.NetworkConfig(ADDRESS, GATEWAY, (GATEWAY,), "web-1")
    for root in (base, workload):
        network.write_etc(str(root), network.guest_files(config))
        etc = root / "etc"
        assert (etc / "resolv.conf").read_text() == "nameserver 10.94.0.1\n"
        assert not (etc / "resolv.conf").is_symlink()
        assert (etc / "hostname").read_text() == "web-1\n"
        assert "10.94.0.5\tweb-1\n" in (etc / "hosts").read_text()
    assert outside.read_text() == "nameserver 127.0.0.53\n", "the link's target is untouched"


def test_an_etc_that_is_a_link_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "etc").symlink_to(elsewhere)
    with pytest.raises(OSError):
        network.write_etc(str(root), {"hostname": "web-1\n"})
    assert os.listdir(elsewhere) == []


def test_nothing_given_writes_nothing(tmp_path: Path) -> None:
    network.write_etc(str(tmp_path), network.guest_files(network.NetworkConfig()))
    assert list(tmp_path.iterdir()) == []
