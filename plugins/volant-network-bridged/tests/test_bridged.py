"""The ``bridged`` mode's host side in a network namespace of the test's own: the tap it puts on the
bridge, the launch parameters it hands kestrel, its settings and its refusals.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from volant_network_bridged import dns
from volant_network_bridged.plugin import BridgedNetwork, BridgedSettings

from volant_core.sdk import PluginContext, PluginError, VMView, hostnet, tap_name
from volant_core.sdk import ValidationError as VolantValidationError
from volant_core.settings import load_settings
from volant_core.testing.contracts import NetworkModeContract, make_vm_view
from volant_core.testing.daemon import running_daemon
from volant_core.testing.netns import NetworkNamespace, network_namespace

BRIDGE = "vbtest0"
SUBNET = ipaddress.IPv4Network("10.93.0.0/24")
HOST_IP = SUBNET[1]
GUEST_MAC = "02:54:00:12:34:56"


@pytest.fixture
def namespace() -> Iterator[NetworkNamespace]:
    """A network namespace of the test's own (fails the test when a link stays behind)."""
    with network_namespace("volant-bridged") as ns:
        yield ns


@pytest.fixture
def bridge(namespace: NetworkNamespace) -> Iterator[int]:
    """The index of :data:`BRIDGE`, up, with the host address; removed afterwards."""
    namespace.ipr.link("add", ifname=BRIDGE, kind="bridge")
    (index,) = namespace.ipr.link_lookup(ifname=BRIDGE)
    namespace.ipr.addr("add", index=index, address=str(HOST_IP), prefixlen=SUBNET.prefixlen)
    namespace.ipr.link("set", index=index, state="up")
    yield index
    namespace.ipr.link("del", index=index)


def bridged(tmp_path: Path, **options: Any) -> BridgedNetwork:
    """The mode as the daemon builds it, with ``options`` as its settings."""
    settings = load_settings({}, state_dir=tmp_path, subnet=SUBNET, host_ip=HOST_IP)
    return BridgedNetwork(PluginContext("bridged", settings, BridgedSettings(**options)))


@pytest.fixture
def vm(tmp_path: Path) -> VMView:
    """A VM of the mode with its leased address."""
    return make_vm_view(
        "web-1", tmp_path, network_mode="bridged", ip_address=str(SUBNET[5]), mac_address=GUEST_MAC
    )


@pytest.fixture
def network_mode(namespace: NetworkNamespace, bridge: int, tmp_path: Path) -> Iterator[BridgedNetwork]:
    """The mode on :data:`BRIDGE`; the test runs inside the namespace."""
    with namespace.enter():
        yield bridged(tmp_path, bridge=BRIDGE, dns="10.93.0.1, 9.9.9.9")


class TestBridgedContract(NetworkModeContract):
    """What every network mode must do."""


def test_attach_puts_a_tap_of_its_own_mac_on_the_bridge_and_detach_removes_it(
    network_mode: BridgedNetwork, vm: VMView, namespace: NetworkNamespace, bridge: int
) -> None:
    attachment = network_mode.attach(vm)
    tap = tap_name(vm.name)
    (nic,) = attachment.nics
    assert nic.tap == tap and nic.mac == GUEST_MAC
    (link,) = namespace.ipr.get_links(ifname=tap)
    assert link.get("IFLA_MASTER") == bridge
    assert link.get("IFLA_ADDRESS") == nic.host_mac == hostnet.host_mac(GUEST_MAC) != GUEST_MAC
    assert link["flags"] & 1, "the tap is up"
    assert attachment.kernel_args == (
        f"volant.ip={SUBNET[5]}/24",
        f"volant.gw={HOST_IP}",
        "volant.hostname=web-1",
        "volant.dns=10.93.0.1,9.9.9.9",
    )
    network_mode.detach(vm)
    assert namespace.links() == [BRIDGE]


def test_a_missing_bridge_is_a_clear_error_and_leaves_no_tap(
    namespace: NetworkNamespace, vm: VMView, tmp_path: Path
) -> None:
    with namespace.enter():
        mode = bridged(tmp_path, bridge="nobr0")
        with pytest.raises(PluginError, match=r"bridge nobr0 does not exist.*VOLANT_BRIDGED_BRIDGE"):
            mode.attach(vm)
    assert namespace.links() == []


def test_a_link_that_is_no_bridge_is_refused_too(
    namespace: NetworkNamespace, vm: VMView, tmp_path: Path
) -> None:
    namespace.ipr.link("add", ifname="notabr0", kind="veth", peer="notabr1")
    try:
        with namespace.enter(), pytest.raises(PluginError, match="bridge notabr0 does not exist"):
            bridged(tmp_path, bridge="notabr0").attach(vm)
        assert sorted(namespace.links()) == ["notabr0", "notabr1"]
    finally:
        namespace.ipr.link("del", index=namespace.ipr.link_lookup(ifname="notabr0")[0])


def test_without_the_dns_setting_guests_use_the_hosts_reachable_servers(
    network_mode: BridgedNetwork, vm: VMView, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(
        "# written by hand\nsearch example.org\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n"
        "nameserver ::1\nnameserver 10.0.0.2\nnameserver 1.1.1.1\nnameserver bogus\n"
        "nameserver 8.8.8.8\nnameserver 9.9.9.9\n"
    )
    monkeypatch.setattr(dns, "HOST_RESOLV_CONF", resolv)
    mode = bridged(tmp_path, bridge=BRIDGE)
    try:
        assert "volant.dns=10.0.0.2,1.1.1.1,8.8.8.8" in mode.attach(vm).kernel_args
    finally:
        mode.detach(vm)
    resolv.write_text("nameserver 127.0.0.53\n")
    try:
        assert not any(arg.startswith("volant.dns=") for arg in mode.attach(vm).kernel_args)
    finally:
        mode.detach(vm)


def test_no_resolv_conf_means_no_host_servers(tmp_path: Path) -> None:
    assert dns.host_nameservers(tmp_path / "missing") == ()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("10.0.0.1,dns.example", "'dns.example' is not an IPv4 address"),
        ("1.1.1.1,::1", "'::1'"),
        ("1.1.1.1,1.0.0.1,8.8.8.8,9.9.9.9", "at most 3 servers"),
    ],
)
def test_the_dns_setting_refuses_what_a_guest_could_not_use(value: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        BridgedSettings(dns=value)


def test_the_dns_setting_is_normalised() -> None:
    assert BridgedSettings(dns=" 10.0.0.1 ,9.9.9.9,").dns == "10.0.0.1,9.9.9.9"


@pytest.mark.parametrize("name", ["", "a-bridge-name-too-long", "br 0", "br/0"])
def test_a_bridge_name_linux_would_refuse_is_refused_up_front(name: str) -> None:
    with pytest.raises(ValidationError, match="bridge"):
        BridgedSettings(bridge=name)


def test_the_daemon_refuses_to_start_with_a_bad_setting_naming_its_variable() -> None:
    refused = pytest.raises(VolantValidationError, match=r"VOLANT_BRIDGED_DNS: .*'x' is not an IPv4 address")
    with refused, running_daemon(plugin_settings={"VOLANT_BRIDGED_DNS": "1.1.1.1,x"}):
        pass
