"""kestrel's DHCP client: busybox ``udhcpc`` on the guest NIC when the command line says ``volant.net=dhcp``.

Busybox ships no udhcpc event script; :data:`SCRIPT` is the one the guest image installs at
:data:`~.constants.UDHCPC_SCRIPT`. It applies the lease idempotently (an address already set is
kept), sets the default route through the server's router and writes ``/etc/resolv.conf`` when
the server names DNS servers.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .constants import BUSYBOX, CMDLINE_NET_KEY, DHCP_LEASE_FILE, GUEST_NIC, NET_DHCP, UDHCPC_SCRIPT
from .manifest import cmdline_value

#: DISCOVER attempts before giving up, and seconds between them: ~30 s for a server that restarts.
ATTEMPTS = 15
ATTEMPT_INTERVAL_S = 2

#: The udhcpc event script (``$1``: deconfig, bound, renew, leasefail or nak; the lease in the environment).
SCRIPT = f"""#!/bin/sh
# udhcpc event script of Volant guests (installed by the guest image builder).
case "$1" in
deconfig)
    ip link set dev "$interface" up
    ;;
bound|renew)
    # busybox ip has no "addr replace": keep the address when it is already the leased one.
    if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/$mask "; then
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/$mask" dev "$interface"
    fi
    gateway="${{router%% *}}"
    if [ -n "$gateway" ]; then
        ip route replace default via "$gateway" dev "$interface"
    fi
    if [ -n "$dns" ]; then
        for server in $dns; do echo "nameserver $server"; done > /etc/resolv.conf
    fi
    mkdir -p "{Path(DHCP_LEASE_FILE).parent}"
    echo "$ip/$mask $gateway" > "{DHCP_LEASE_FILE}"
    ;;
esac
exit 0
"""


def wanted(cmdline: str) -> bool:
    """Whether the network mode asked for DHCP on the kernel command line."""
    return cmdline_value(cmdline, CMDLINE_NET_KEY) == NET_DHCP


def request_lease(device: str = GUEST_NIC) -> str:
    """Ask for a lease on ``device`` and apply it; the ``<ip>/<prefix> <router>`` applied.

    Runs before any other child of kestrel (no reaper yet), so a plain ``subprocess.run`` is safe.
    Raises :class:`RuntimeError` with udhcpc's output when no server answered.
    """
    Path(DHCP_LEASE_FILE).unlink(missing_ok=True)
    argv = [BUSYBOX, "udhcpc", "-i", device, "-f", "-q", "-n", "-s", UDHCPC_SCRIPT]
    argv += ["-t", str(ATTEMPTS), "-T", str(ATTEMPT_INTERVAL_S)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=ATTEMPTS * ATTEMPT_INTERVAL_S + 30)
    lease = Path(DHCP_LEASE_FILE)
    if done.returncode != 0 or not lease.exists():
        raise RuntimeError(
            f"no DHCP lease on {device} (udhcpc exit {done.returncode}): {done.stderr.strip()}"
        )
    return lease.read_text().strip()
