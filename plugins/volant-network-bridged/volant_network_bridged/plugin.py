"""The ``bridged`` network mode: each VM gets a tap on the host bridge and a static address that
volantd leases from its subnet (``VOLANT_SUBNET``); kestrel configures the guest from the kernel
command line (address, gateway = ``VOLANT_HOST_IP``).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from volant_core.sdk import (
    NetworkAttachment,
    NetworkModeDescriptor,
    NicSpec,
    PluginContext,
    VMView,
    hookimpl,
    hostnet,
    tap_name,
)


class BridgedSettings(BaseModel):
    """Settings of the ``bridged`` mode (``VOLANT_BRIDGED_<FIELD>``, ``volantd --bridged-<field>``)."""

    bridge: str = Field("vbr0", description="host bridge the VMs' taps join (made by `volar setup`)")


class BridgedNetwork:
    """Attaches VMs to the bridge named in the plugin's settings."""

    def __init__(self, context: PluginContext) -> None:
        """Use ``context``'s bridge, subnet and host address."""
        self._context = context

    @property
    def bridge(self) -> str:
        """The bridge the taps join."""
        options = self._context.options
        assert isinstance(options, BridgedSettings)
        return options.bridge

    def attach(self, vm: VMView) -> NetworkAttachment:
        """Create the VM's tap on the bridge and tell kestrel its address and gateway."""
        tap = tap_name(vm.name)
        mac = hostnet.host_mac(vm.mac_address)
        hostnet.create_tap(tap, self.bridge, mac=mac)
        settings = self._context.settings
        return NetworkAttachment(
            nics=(NicSpec(tap=tap, mac=vm.mac_address, host_mac=mac),),
            kernel_args=(
                f"volant.ip={vm.ip_address}/{settings.subnet.prefixlen}",
                f"volant.gw={settings.host_ip}",
            ),
        )

    def detach(self, vm: VMView) -> None:
        """Remove the VM's tap (gone already is fine)."""
        hostnet.delete_link(tap_name(vm.name))


@hookimpl
def volant_settings() -> list[type[BaseModel]]:
    """Declare :class:`BridgedSettings`."""
    return [BridgedSettings]


@hookimpl
def volant_network_modes() -> list[NetworkModeDescriptor]:
    """Register the ``bridged`` mode."""
    return [
        NetworkModeDescriptor(
            name="bridged",
            factory=BridgedNetwork,
            needs_ip=True,
            publishes_ports=True,
            requires=frozenset({"tap-nics"}),
            description="a tap on the host bridge; a static address from volantd's subnet",
        )
    ]
