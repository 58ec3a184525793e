"""The files ``volar setup`` writes: kernel parameters, volantd's unit, the boot-time unit, the API key."""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path

from volant_core.hostsetup.options import SetupOptions
from volant_core.hostsetup.sysctl import IP_FORWARD

#: systemd units and where they go.
UNIT_DIR = Path("/etc/systemd/system")
VOLANTD_UNIT = "volantd.service"
SETUP_UNIT = "volant-setup.service"

#: Keeps ``ip_forward`` on when something re-applies sysctl.d (``sysctl --system``, boot).
SYSCTL_FILE = Path("/etc/sysctl.d/90-volant.conf")

HEADER = "# Written by `volar setup`; `volar setup --uninstall` removes it.\n"


@dataclass(frozen=True)
class FileSpec:
    """A file to have on the host: ``path`` (host path), its text and mode.

    ``keep_existing``: an existing file is left as it is (the API key is never replaced).
    """

    path: Path
    content: str
    mode: int = 0o644
    keep_existing: bool = False


def sysctl_conf() -> str:
    """The sysctl.d file."""
    return f"{HEADER}{IP_FORWARD} = 1\n"


def setup_unit(options: SetupOptions) -> str:
    """``volant-setup.service``: re-applies the bridge, forwarding and rules at boot, before volantd."""
    return f"""{HEADER}[Unit]
Description=Volant host networking (bridge {options.bridge}, forwarding, NAT)
Wants=network-pre.target
Before=network-pre.target {VOLANTD_UNIT}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={shlex.join(options.boot_command())}

[Install]
WantedBy=multi-user.target
"""


def volantd_environment(options: SetupOptions) -> list[tuple[str, str]]:
    """volantd's variables: listen address, subnet, host address, key file, the plugins' bridge."""
    return [
        ("VOLANT_API_LISTEN", options.listen),
        ("VOLANT_SUBNET", str(options.subnet)),
        ("VOLANT_HOST_IP", str(options.host_ip)),
        ("VOLANT_API_KEY_FILE", str(options.api_key_file)),
        *((variable, options.bridge) for variable in options.bridge_variables),
    ]


def volantd_unit(options: SetupOptions) -> str:
    """``volantd.service``. ``KillMode=process``: stopping volantd leaves the VMs running for the
    next start to re-adopt, as volantd does outside systemd.
    """
    environment = "".join(f"Environment={name}={value}\n" for name, value in volantd_environment(options))
    return f"""{HEADER}[Unit]
Description=Volant control plane (volantd)
Wants=network-online.target {SETUP_UNIT}
After=network-online.target {SETUP_UNIT}

[Service]
Type=simple
{environment}ExecStart={shlex.quote(options.volantd)} serve
Restart=on-failure
RestartSec=5
KillMode=process

[Install]
WantedBy=multi-user.target
"""


def wanted_files(
    options: SetupOptions, firewall_files: dict[Path, str]
) -> tuple[list[FileSpec], list[FileSpec]]:
    """The files, in two groups: those written before the network changes (sysctl.d, the firewall's,
    the API key) and the systemd units, written after them.
    """
    early = [
        FileSpec(SYSCTL_FILE, sysctl_conf()),
        *(FileSpec(path, text) for path, text in firewall_files.items()),
        FileSpec(options.api_key_file, secrets.token_urlsafe(32) + "\n", 0o600, keep_existing=True),
    ]
    units = [
        FileSpec(UNIT_DIR / SETUP_UNIT, setup_unit(options)),
        FileSpec(UNIT_DIR / VOLANTD_UNIT, volantd_unit(options)),
    ]
    return early, units
