"""What ``volar setup`` is asked to do, validated, with errors that name the flag and the fix."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from volant_core.errors import ValidationError

#: Linux interface names: 1-15 characters, no ``/``, whitespace or ``:``.
_LINK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")

#: Where the API key is kept unless ``--api-key-file`` says otherwise.
DEFAULT_API_KEY_FILE = Path("/etc/volant/api-key")

#: Default bridge, the same as the network-mode plugins' default ``bridge`` setting.
DEFAULT_BRIDGE = "vbr0"


@dataclass(frozen=True)
class SetupOptions:
    """The validated options of one ``volar setup`` run.

    ``root`` prefixes every file written (``/`` on a real host); file contents name the paths
    without it, as a package's ``DESTDIR`` does. ``bridge_variables`` are the ``VOLANT_<PLUGIN>_BRIDGE``
    variables of the installed plugins that take a bridge, written into volantd's unit.
    """

    bridge: str
    interface: ipaddress.IPv4Interface
    listen: str
    api_key_file: Path
    volar: str
    volantd: str
    root: Path = Path("/")
    systemctl: bool = True
    bridge_variables: tuple[str, ...] = field(default=())

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        """The VMs' subnet."""
        return self.interface.network

    @property
    def host_ip(self) -> ipaddress.IPv4Address:
        """The host's address on the bridge (the VMs' gateway)."""
        return self.interface.ip

    def path(self, path: Path) -> Path:
        """``path`` (absolute, as on the host) under :attr:`root`."""
        return self.root / path.relative_to("/")

    def boot_command(self) -> list[str]:
        """The ``volar setup`` command line that re-applies these options at boot."""
        return [
            self.volar,
            "setup",
            "--no-systemctl",
            "--bridge",
            self.bridge,
            "--subnet",
            str(self.subnet),
            "--host-ip",
            str(self.host_ip),
            "--listen",
            self.listen,
            "--api-key-file",
            str(self.api_key_file),
        ]


def parse_options(
    *,
    bridge: str,
    subnet: str,
    host_ip: str,
    listen: str,
    api_key_file: str,
    volar: str,
    volantd: str,
    root: str,
    systemctl: bool,
    bridge_variables: tuple[str, ...],
) -> SetupOptions:
    """Check the flags of ``volar setup``; :class:`ValidationError` names the first bad one and the fix."""
    if not _LINK_NAME.fullmatch(bridge):
        raise ValidationError(
            f"--bridge: {bridge!r} is not an interface name; use 1-15 letters, digits, '_', '.' or '-'",
            field="bridge",
        )
    try:
        network = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as err:
        raise ValidationError(
            f"--subnet: {subnet!r} is not an IPv4 network ({err}); use e.g. 192.168.127.0/24",
            field="subnet",
        ) from None
    if network.prefixlen > 30:
        raise ValidationError(
            f"--subnet: {network} leaves no room for VMs; use a /30 or larger, e.g. 192.168.127.0/24",
            field="subnet",
        )
    try:
        address = ipaddress.IPv4Address(host_ip)
    except ValueError:
        raise ValidationError(
            f"--host-ip: {host_ip!r} is not an IPv4 address; use e.g. {next(network.hosts())}",
            field="host_ip",
        ) from None
    if address not in network or address in (network.network_address, network.broadcast_address):
        raise ValidationError(
            f"--host-ip: {address} is not a host address of --subnet {network}; "
            f"use one inside it, e.g. {next(network.hosts())}",
            field="host_ip",
        )
    host, sep, port = listen.rpartition(":")
    if not (sep and host and port.isdigit() and 0 < int(port) <= 65535):
        raise ValidationError(f"--listen: {listen!r} must be HOST:PORT, e.g. 127.0.0.1:7777", field="listen")
    key_file = Path(api_key_file)
    if not key_file.is_absolute():
        raise ValidationError(
            f"--api-key-file: {api_key_file} is not an absolute path; use e.g. {DEFAULT_API_KEY_FILE}",
            field="api_key_file",
        )
    root_dir = Path(root)
    if not (root_dir.is_absolute() and root_dir.is_dir()):
        raise ValidationError(
            f"--root: {root} is not an existing directory given by its absolute path", field="root"
        )
    return SetupOptions(
        bridge=bridge,
        interface=ipaddress.IPv4Interface(f"{address}/{network.prefixlen}"),
        listen=listen,
        api_key_file=key_file,
        volar=volar,
        volantd=volantd,
        root=root_dir,
        systemctl=systemctl,
        bridge_variables=bridge_variables,
    )
