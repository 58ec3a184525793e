"""The ``vsock`` network mode: the VM has no network interface and no address, and the host reaches
kestrel only over the agent channel the hypervisor itself gives every guest (QEMU's virtio-serial
ports; Cloud Hypervisor's hybrid vsock once that backend offers it).

What it promises beyond the core's ``none`` mode: it requires the hypervisor capability
``agent-channel``, so a VM in this mode is refused when it is created (422 naming
``network.mode``) on a hypervisor without such a channel, instead of failing at boot or being
reached over a channel a plugin offers (a TCP port) through ``volant_agent_channel``. ``none`` makes
no promise about how the agent is reached.
"""

from __future__ import annotations

from volant_core.sdk import Capability, NetworkModeDescriptor, NoNetwork, hookimpl

#: What the mode needs of the hypervisor.
REQUIRES = frozenset({Capability.AGENT_CHANNEL})


@hookimpl
def volant_network_modes() -> list[NetworkModeDescriptor]:
    """Register the ``vsock`` mode."""
    return [
        NetworkModeDescriptor(
            name="vsock",
            factory=NoNetwork,  # nothing on the host: no tap, no address, no kernel arguments
            requires=REQUIRES,
            description="no network; the agent only over the hypervisor's own host-only channel",
        )
    ]
