"""``python -m volant_core.testing.host_volantd [volantd options]``: the volantd executable with the
TEST hypervisor ``test-host-process`` (:mod:`volant_core.testing.hostvm`) and the TEST network mode
``test-leased-ip`` (:mod:`volant_core.testing.leased_ip`) registered.

For tests that need volantd as a process of its own (to kill it with SIGKILL and start it again on
the same state) while the VMs are host processes, not guests. Give ``--hypervisor
test-host-process`` (or ``VOLANT_HYPERVISOR``) to choose the backend.
"""

from __future__ import annotations

from volant_core.cli.volantd import main
from volant_core.testing import hostvm
from volant_core.testing.leased_ip import LeasedIpMode

if __name__ == "__main__":
    main(extra_plugins=[(hostvm.NAME, hostvm), LeasedIpMode().registration])
