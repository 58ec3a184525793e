"""``python -m volant_core.testing.host_volantd [volantd options]``: the volantd executable with TEST
plugins registered, for tests that need volantd as a process of its own (to kill it with SIGKILL
and start it again on the same state) while the VMs are host processes, not guests:

* the hypervisor ``test-host-process`` (:mod:`volant_core.testing.hostvm`), and its variant
  ``test-host-process-taps`` (:data:`TAP_BACKEND`), which claims tap NICs so that a tap-based
  network mode (``bridged``) gets through the create path: the mode makes the VM's tap on the host,
  kestrel (a host process) does not use it;
* the network mode ``test-leased-ip`` (:mod:`volant_core.testing.leased_ip`).

Choose the backend with ``--hypervisor`` (or ``VOLANT_HYPERVISOR``). As for
:func:`~volant_core.testing.hostvm.host_process_daemon`, the overcommit ratios default to
:data:`~volant_core.testing.hostvm.HOST_PROCESS_OVERCOMMIT` (its VMs take no vCPUs or memory).
"""

from __future__ import annotations

import os
import sys

from volant_core import hookimpl
from volant_core.cli.volantd import main
from volant_core.launch import Capability, HypervisorDescriptor
from volant_core.testing import hostvm
from volant_core.testing.leased_ip import LeasedIpMode

#: The command line of this program, for :func:`~volant_core.testing.daemon.volantd_process`
#: ``command=``.
HOST_VOLANTD = (sys.executable, "-m", "volant_core.testing.host_volantd")
#: The host-process backend that claims tap NICs (the network mode's tap is made, never attached).
TAP_BACKEND = "test-host-process-taps"


class TapClaimingBackend:
    """TEST double: registers :data:`TAP_BACKEND`."""

    @hookimpl
    def volant_hypervisors(self) -> list[HypervisorDescriptor]:
        """The test backend."""
        return [
            HypervisorDescriptor(
                TAP_BACKEND,
                hostvm.HostProcessLauncher,
                "TEST ONLY: host processes; claims tap NICs without attaching them",
                capabilities=frozenset({Capability.TAP_NICS, Capability.ADOPT, "test-only"}),
            )
        ]


if __name__ == "__main__":
    for ratio in ("VOLANT_CPU_OVERCOMMIT", "VOLANT_MEMORY_OVERCOMMIT"):
        os.environ.setdefault(ratio, str(hostvm.HOST_PROCESS_OVERCOMMIT))
    main(
        extra_plugins=[
            (hostvm.NAME, hostvm),
            ("test-host-process-taps", TapClaimingBackend()),
            LeasedIpMode().registration,
        ]
    )
