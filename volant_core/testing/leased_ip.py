"""``test-leased-ip``: a TEST network mode whose VMs lease an IP address and get nothing on the host.

For tests of what volantd does with addresses (the lease, its release) without taps or bridges.
"""

from __future__ import annotations

from volant_core import hookimpl
from volant_core.builtins import NoNetwork
from volant_core.descriptors import NetworkModeDescriptor


class LeasedIpMode:
    """A plugin registering the network mode :attr:`mode`: an IP lease, nothing on the host."""

    mode = "test-leased-ip"

    @property
    def registration(self) -> tuple[str, object]:
        """``(plugin name, plugin)`` for ``running_daemon(plugins=[...])``."""
        return ("test-leased-ip-mode", self)

    @hookimpl
    def volant_network_modes(self) -> list[NetworkModeDescriptor]:
        """Register the mode (attach and detach do nothing)."""
        return [NetworkModeDescriptor(self.mode, factory=NoNetwork, needs_ip=True)]
