"""``volar doctor`` checks of what ``volar setup`` sets up: the bridges up with the host's address,
``ip_forward`` on, a NAT rule for the subnet. Each warns with the fix when the host lacks it.

They look at the bridges of the installed plugins that take one (their ``bridge`` setting as this
shell's ``VOLANT_*`` variables give it) and at volantd's subnet and host address.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess

from volant_core.context import PluginContext
from volant_core.descriptors import HostCheck, HostCheckResult
from volant_core.hostsetup import links, sysctl
from volant_core.hostsetup.errors import HostSetupError

#: The fix every check of this module points to.
FIX = "run `sudo volar setup` (see docs/networking/setup.md)"

NOT_NEEDED = HostCheckResult("pass", "no installed network mode uses a host bridge")


#: Bridges by the plugin settings variables they were found with: the three checks share one lookup.
_found: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}


def _bridges(context: PluginContext) -> dict[str, str]:
    """Plugin -> bridge, for the plugins installed here."""
    from volant_core.hostsetup.bridges import configured_bridges
    from volant_core.plugins import load_plugins

    key = tuple(sorted(context.settings.plugin_env.items()))
    if key not in _found:
        _found[key] = configured_bridges(load_plugins(), context.settings)
    return _found[key]


def check_bridges(context: PluginContext) -> HostCheckResult:
    """Every plugin's bridge exists, is up and has the host address (``VOLANT_HOST_IP``)."""
    bridges = _bridges(context)
    if not bridges:
        return NOT_NEEDED
    settings = context.settings
    wanted = ipaddress.IPv4Interface(f"{settings.host_ip}/{settings.subnet.prefixlen}")
    problems = []
    for bridge in sorted(set(bridges.values())):
        users = ", ".join(sorted(p for p, b in bridges.items() if b == bridge))
        kind = links.link_kind(bridge)
        if kind != "bridge":
            problems.append(
                f"{bridge} (used by {users}) " + ("does not exist" if kind is None else "is not a bridge")
            )
        elif not links.is_up(bridge):
            problems.append(f"{bridge} is down")
        elif wanted not in links.addresses(bridge):
            problems.append(f"{bridge} lacks the host address {wanted}")
    if problems:
        return HostCheckResult("warn", "; ".join(problems), FIX)
    return HostCheckResult("pass", f"{', '.join(sorted(set(bridges.values())))} up with {wanted}")


def check_ip_forward(context: PluginContext) -> HostCheckResult:
    """``net.ipv4.ip_forward`` is 1, so the VMs' traffic is routed."""
    if not _bridges(context):
        return NOT_NEEDED
    try:
        value = sysctl.read(sysctl.IP_FORWARD)
    except HostSetupError as err:
        return HostCheckResult("warn", err.message, FIX)
    if value == "1":
        return HostCheckResult("pass", f"{sysctl.IP_FORWARD} = 1")
    return HostCheckResult("warn", f"{sysctl.IP_FORWARD} = {value}: the VMs cannot reach other networks", FIX)


def check_nat(context: PluginContext) -> HostCheckResult:
    """A masquerade rule for volantd's subnet is loaded (nftables, else iptables)."""
    if not _bridges(context):
        return NOT_NEEDED
    subnet = str(context.settings.subnet)
    if (nft := shutil.which("nft")) is not None:
        argv, found = (
            [nft, "list", "ruleset"],
            lambda line: f"ip saddr {subnet}" in line and "masquerade" in line,
        )
    elif (iptables := shutil.which("iptables")) is not None:
        argv, found = (
            [iptables, "-w", "-t", "nat", "-S"],
            lambda line: f"-s {subnet}" in line and "MASQUERADE" in line,
        )
    else:
        return HostCheckResult(
            "warn", "neither nft nor iptables is installed", "apt-get install nftables, then " + FIX
        )
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return HostCheckResult(
            "warn", f"cannot read the ruleset: {done.stderr.strip()}", "run volar doctor as root"
        )
    if any(found(line) for line in done.stdout.splitlines()):
        return HostCheckResult("pass", f"{subnet} is masqueraded ({argv[0]})")
    return HostCheckResult(
        "warn", f"no masquerade rule for {subnet}: the VMs cannot reach other networks", FIX
    )


#: The checks, registered by the core (``volant_core.builtins``).
HOST_CHECKS = [
    HostCheck("host-bridge", check_bridges),
    HostCheck("ip-forward", check_ip_forward),
    HostCheck("nat", check_nat),
]
