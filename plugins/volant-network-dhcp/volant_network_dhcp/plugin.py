"""The ``dhcp`` network mode: each VM gets a tap on the host bridge, and a dnsmasq DHCP server that
the plugin runs on that bridge hands the guest the address volantd leased to it (a static lease per
MAC); kestrel asks for it with busybox ``udhcpc`` when the command line says ``volant.net=dhcp``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from volant_core.sdk import (
    Capability,
    HostCheck,
    HostCheckResult,
    NetworkAttachment,
    NetworkModeDescriptor,
    PluginContext,
    PluginError,
    VMView,
    hookimpl,
    hostnet,
)

from .dnsmasq import find_binary
from .servers import DhcpServers, forget, servers_of

#: The network mode's name (a VM's ``network.mode``).
MODE = "dhcp"
#: The kernel command line argument that has kestrel ask for its address over DHCP.
KERNEL_ARG = "volant.net=dhcp"


class DhcpSettings(BaseModel):
    """Settings of the ``dhcp`` mode (``VOLANT_DHCP_<FIELD>``, ``volantd --dhcp-<field>``)."""

    bridge: str = Field(
        "vbr0", min_length=1, description="host bridge the VMs' taps join (made by `volar setup`)"
    )
    dnsmasq: str = Field(
        "dnsmasq", min_length=1, description="the dnsmasq binary (a path or a name; Debian: dnsmasq-base)"
    )


def _options(context: PluginContext) -> DhcpSettings:
    options = context.options
    assert isinstance(options, DhcpSettings)
    return options


def _servers(context: PluginContext) -> DhcpServers:
    return servers_of(context, MODE, _options(context).dnsmasq)


class DhcpNetwork:
    """Attaches VMs to the bridge of the plugin's settings and serves their addresses over DHCP."""

    def __init__(self, context: PluginContext) -> None:
        """Use ``context``'s bridge, subnet and host address."""
        self._context = context

    def attach(self, vm: VMView) -> NetworkAttachment:
        """Create the VM's tap and serve its address; on failure neither remains."""
        bridge = _options(self._context).bridge
        self._check_bridge(bridge)
        nic = hostnet.attach_vm(vm.name, vm.mac_address, bridge, setting="VOLANT_DHCP_BRIDGE")
        try:
            _servers(self._context).add(bridge, vm)
        except BaseException:
            hostnet.detach_vm(vm.name)
            raise
        return NetworkAttachment(nics=(nic,), kernel_args=(KERNEL_ARG,))

    def _check_bridge(self, bridge: str) -> None:
        """Refuse a bridge dnsmasq could not serve the VM's subnet on (dnsmasq would stay silent)."""
        state = hostnet.bridge_state(bridge)
        if state is None:
            raise PluginError(f"bridge {bridge} does not exist; create it with `volar setup` (as root)")
        subnet = self._context.settings.subnet
        if not any(address.network == subnet for address in state.addresses):
            raise PluginError(
                f"bridge {bridge} has no address in {subnet} (VOLANT_SUBNET), so no DHCP server can "
                f"serve it: give it {self._context.settings.host_ip}/{subnet.prefixlen} (`volar setup`)"
            )

    def detach(self, vm: VMView) -> None:
        """Remove the VM's tap and its DHCP host entry (either gone already is fine)."""
        hostnet.detach_vm(vm.name)
        _servers(self._context).remove(vm)


def check_dnsmasq(context: PluginContext) -> HostCheckResult:
    """``volar doctor``: the dnsmasq binary the mode runs is installed."""
    binary = _options(context).dnsmasq
    found = find_binary(binary)
    if found is None:
        return HostCheckResult(
            "fail",
            f"{binary} not found (PATH and /usr/sbin): the dhcp network mode cannot serve addresses",
            fix="apt-get install dnsmasq-base (not `dnsmasq`, which starts a system-wide service)",
        )
    return HostCheckResult("pass", f"{found}")


@hookimpl
def volant_settings() -> list[type[BaseModel]]:
    """Declare :class:`DhcpSettings`."""
    return [DhcpSettings]


@hookimpl
def volant_network_modes() -> list[NetworkModeDescriptor]:
    """Register the ``dhcp`` mode."""
    return [
        NetworkModeDescriptor(
            name=MODE,
            factory=DhcpNetwork,
            needs_ip=True,
            publishes_ports=True,
            requires=frozenset({Capability.TAP_NICS}),
            description="a tap on the host bridge; the guest asks a dnsmasq of volantd's for its address",
        )
    ]


@hookimpl
def volant_host_checks() -> list[HostCheck]:
    """Register the ``dnsmasq`` check."""
    return [HostCheck(name="dnsmasq", run=check_dnsmasq)]


@hookimpl
def volant_daemon_started(vms: list[VMView], context: PluginContext) -> None:
    """Adopt the dnsmasq servers still running for the VMs (or start them again); stop unused ones."""
    _servers(context).reconcile(vms)


@hookimpl
def volant_daemon_stopping(context: PluginContext) -> None:
    """Stop supervising; dnsmasq keeps serving the VMs, which keep running, until the next daemon."""
    servers = forget(context)
    if servers is not None:
        servers.release()
