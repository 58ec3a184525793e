"""The ``bridged`` network mode: each VM gets a tap on the host bridge and a static address that
volantd leases from its subnet (``VOLANT_SUBNET``). kestrel configures the guest from its launch
parameters: the address, the default route through ``VOLANT_HOST_IP``, the DNS servers (the
``dns`` setting, else the host's own) and the VM's name as its host name.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from volant_core.sdk import (
    IFNAME_MAX,
    NetworkAttachment,
    NetworkModeDescriptor,
    PluginContext,
    VMView,
    hookimpl,
    hostnet,
)

from .dns import MAX_NAMESERVERS, host_nameservers, parse_servers


class BridgedSettings(BaseModel):
    """Settings of the ``bridged`` mode (``VOLANT_BRIDGED_<FIELD>``, ``volantd --bridged-<field>``)."""

    bridge: str = Field(
        "vbr0",
        description="host bridge the VMs' taps join (made by `volar setup`)",
        pattern=rf"^[A-Za-z0-9_.-]{{1,{IFNAME_MAX}}}$",
    )
    dns: str = Field(
        "",
        description=(
            f"DNS servers of the guests, comma-separated IPv4 addresses (at most {MAX_NAMESERVERS}); "
            "empty: the host's own from /etc/resolv.conf, loopback ones left out"
        ),
    )

    @field_validator("dns")
    @classmethod
    def _dns(cls, value: str) -> str:
        return ",".join(map(str, parse_servers(value)))


class BridgedNetwork:
    """Attaches VMs to the bridge named in the plugin's settings."""

    def __init__(self, context: PluginContext) -> None:
        """Use ``context``'s bridge, DNS servers, subnet and host address."""
        self._context = context
        options = context.options
        assert isinstance(options, BridgedSettings)
        self._options = options

    @property
    def bridge(self) -> str:
        """The bridge the taps join."""
        return self._options.bridge

    def nameservers(self) -> str:
        """The guests' DNS servers, comma-separated: the ``dns`` setting, else the host's own
        (read at every attach, so a changed host configuration reaches the next boot).
        """
        return self._options.dns or ",".join(map(str, host_nameservers()))

    def attach(self, vm: VMView) -> NetworkAttachment:
        """Create the VM's tap on the bridge and give kestrel the VM's address, gateway, DNS
        servers and host name. A missing bridge is a :class:`PluginError` naming it; no tap is left.
        """
        nic = hostnet.attach_vm(vm.name, vm.mac_address, self.bridge, setting="VOLANT_BRIDGED_BRIDGE")
        settings = self._context.settings
        arguments = [
            f"volant.ip={vm.ip_address}/{settings.subnet.prefixlen}",
            f"volant.gw={settings.host_ip}",
            f"volant.hostname={vm.name}",
        ]
        servers = self.nameservers()
        if servers:
            arguments.append(f"volant.dns={servers}")
        else:
            self._context.log.warning(
                "vm %s gets no DNS server: the host has none but loopback ones; set VOLANT_BRIDGED_DNS",
                vm.name,
            )
        return NetworkAttachment(nics=(nic,), kernel_args=tuple(arguments))

    def detach(self, vm: VMView) -> None:
        """Remove the VM's tap (gone already is fine)."""
        hostnet.detach_vm(vm.name)


@hookimpl
def volant_settings() -> list[type[BaseModel]]:
    """Declare :class:`BridgedSettings`."""
    return [BridgedSettings]


@hookimpl
def volant_network_modes() -> list[NetworkModeDescriptor]:
    """Register the ``bridged`` mode (the VM's ``network.subnet/gateway/auto_assign`` are refused:
    every address comes from the daemon's pool, whose gateway is the bridge's own address).
    """
    return [
        NetworkModeDescriptor(
            name="bridged",
            factory=BridgedNetwork,
            needs_ip=True,
            publishes_ports=True,
            requires=frozenset({"tap-nics"}),
            description="a tap on the host bridge; a static address from volantd's subnet, DNS and host name",
        )
    ]
