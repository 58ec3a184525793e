"""The ``dhcp`` mode as volantd drives it: attach/detach of a VM on the test's bridge, the daemon's
stop and start hooks (dnsmasq outlives the daemon and is adopted), and the ``volar doctor`` check.
"""

from __future__ import annotations

import ipaddress
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from volant_network_dhcp import plugin
from volant_network_dhcp.dnsmasq import find_binary
from volant_network_dhcp.plugin import DhcpNetwork, DhcpSettings

from volant_core.sdk import PluginContext, PluginError, VMStatus, VMView, tap_name
from volant_core.settings import load_settings
from volant_core.testing.contracts import NetworkModeContract

MAC = "02:aa:00:00:01:01"


def vm_view(name: str, ip: str, status: VMStatus = VMStatus.RUNNING, mac: str = MAC) -> VMView:
    """A dhcp VM as the core hands it to the plugin."""
    return VMView(
        name=name,
        status=status,
        runtime="test",
        plugin="test",
        hypervisor="qemu",
        network_mode="dhcp",
        cpu_cores=1,
        memory_mb=256,
        mac_address=mac,
        vsock_cid=3,
        runtime_dir=Path("/nonexistent"),
        ip_address=ip,
    )


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A daemon state directory (mode 0700, as mkdtemp makes it)."""
    with tempfile.TemporaryDirectory(prefix="dhcp-state-") as path:
        yield Path(path)


def context_for(state_dir: Path, subnet: str = "10.77.0.0/24", **options: str) -> PluginContext:
    """The plugin's context in a daemon on ``state_dir`` serving ``subnet`` from bridge tbr0."""
    network = ipaddress.IPv4Network(subnet)
    settings = load_settings({}, state_dir=state_dir, subnet=network, host_ip=next(network.hosts()))
    return PluginContext("dhcp", settings, DhcpSettings(**{"bridge": "tbr0", **options}))


def dnsmasq_pids(lan) -> list[int]:
    """The dnsmasq processes running in the bridge's namespace."""
    return [pid for pid, argv in lan.server_ns.processes().items() if Path(argv.split()[0]).name == "dnsmasq"]


def test_attach_serves_the_vm_on_its_tap_and_detach_removes_both(lan, state_dir: Path) -> None:
    context = context_for(state_dir)
    network = DhcpNetwork(context)
    vm = vm_view("web", "10.77.0.7")
    with lan.server_ns.enter():
        attachment = network.attach(vm)
        try:
            (nic,) = attachment.nics
            assert nic.tap == tap_name("web") and nic.mac == MAC and nic.host_mac != MAC
            assert attachment.kernel_args == ("volant.net=dhcp",)
            assert tap_name("web") in lan.server_ns.links()
            assert lan.ask(MAC) == "10.77.0.7/24 10.77.0.1"
        finally:
            network.detach(vm)
        network.detach(vm)  # idempotent
    assert lan.server_ns.links() == ["tbr0"]
    assert dnsmasq_pids(lan) == []
    assert list((state_dir / "plugins").glob("dhcp/*")) == []


class TestDhcpContract(NetworkModeContract):
    """The core's network-mode contract, on the bridge of a namespace of the test's own."""

    @pytest.fixture
    def network_mode(self, lan, state_dir: Path) -> Iterator[DhcpNetwork]:
        with lan.server_ns.enter():
            yield DhcpNetwork(context_for(state_dir))

    @pytest.fixture
    def vm(self) -> VMView:
        return vm_view("web", "10.77.0.7")


def test_dnsmasq_outlives_a_daemon_stop_and_the_next_daemon_adopts_it(lan, state_dir: Path) -> None:
    vm = vm_view("web", "10.77.0.7")
    with lan.server_ns.enter():
        first = context_for(state_dir)
        DhcpNetwork(first).attach(vm)
        try:
            (pid,) = dnsmasq_pids(lan)
            plugin.volant_daemon_stopping(first)
            assert dnsmasq_pids(lan) == [pid]

            second = context_for(state_dir)
            plugin.volant_daemon_started([vm], second)
            assert dnsmasq_pids(lan) == [pid]
            assert lan.ask(MAC) == "10.77.0.7/24 10.77.0.1"

            # A daemon that finds the VM gone (crashed and released while no daemon ran) stops it.
            plugin.volant_daemon_stopping(second)
            third = context_for(state_dir)
            plugin.volant_daemon_started([vm_view("web", "10.77.0.7", VMStatus.CRASHED)], third)
            assert dnsmasq_pids(lan) == []
        finally:
            DhcpNetwork(context_for(state_dir)).detach(vm)
            plugin.volant_daemon_stopping(context_for(state_dir))


def test_a_bridge_without_an_address_in_the_subnet_is_refused_and_nothing_stays(lan, state_dir: Path) -> None:
    context = context_for(state_dir, subnet="10.99.0.0/24")  # a subnet the bridge does not carry
    with lan.server_ns.enter(), pytest.raises(PluginError, match=r"tbr0 has no address in 10\.99\.0\.0/24"):
        DhcpNetwork(context).attach(vm_view("web", "10.99.0.7"))
    assert lan.server_ns.links() == ["tbr0"]
    assert dnsmasq_pids(lan) == []


def test_a_dnsmasq_that_cannot_start_leaves_no_tap(lan, state_dir: Path) -> None:
    context = context_for(state_dir, dnsmasq="/nonexistent/dnsmasq")
    with lan.server_ns.enter(), pytest.raises(PluginError, match="dnsmasq-base"):
        DhcpNetwork(context).attach(vm_view("web", "10.77.0.7"))
    assert lan.server_ns.links() == ["tbr0"]
    assert list((state_dir / "plugins").glob("dhcp/*")) == []


@pytest.mark.parametrize(("binary", "status"), [("dnsmasq", "pass"), ("/nonexistent/dnsmasq", "fail")])
def test_doctor_checks_that_dnsmasq_is_installed(state_dir: Path, binary: str, status: str) -> None:
    if status == "pass" and find_binary("dnsmasq") is None:
        pytest.skip("dnsmasq is not installed here (apt-get install dnsmasq-base)")
    (check,) = plugin.volant_host_checks()
    result = check.run(context_for(state_dir, dnsmasq=binary))
    assert result.status == status
    if status == "fail":
        assert "dnsmasq-base" in result.fix
