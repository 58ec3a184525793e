"""``test-leased-ip``: a TEST network mode whose VMs lease an IP address and get nothing on the host.

For tests of what volantd does with addresses (the lease, its release) without taps or bridges.
"""

from __future__ import annotations

from volant_core import hookimpl
from volant_core.builtins import NoNetwork
from volant_core.descriptors import NetworkModeDescriptor


class LeasedIpMode:
    """A plugin registering the network mode :attr:`mode`: an IP lease, nothing on the host.

    With ``publishes_ports`` the mode honours a VM's ``expose`` (volantd writes its nftables rules
    for the leased address; run the daemon in a network namespace of the test's own).
    """

    mode = "test-leased-ip"

    def __init__(self, *, publishes_ports: bool = False) -> None:
        """Register the mode, publishing ports or not."""
        self.publishes_ports = publishes_ports

    @property
    def registration(self) -> tuple[str, object]:
        """``(plugin name, plugin)`` for ``running_daemon(plugins=[...])``."""
        return ("test-leased-ip-mode", self)

    @hookimpl
    def volant_network_modes(self) -> list[NetworkModeDescriptor]:
        """Register the mode (attach and detach do nothing)."""
        return [
            NetworkModeDescriptor(
                self.mode, factory=NoNetwork, needs_ip=True, publishes_ports=self.publishes_ports
            )
        ]
