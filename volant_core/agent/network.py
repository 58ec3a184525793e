"""The guest's network identity from its launch parameters: the NIC's address and default route,
the DNS servers, the host name (PID 1 only).

A network mode puts ``volant.ip=<ip>/<prefix>``, ``volant.gw=<ip>``, ``volant.dns=<ip>[,<ip>...]``
and ``volant.hostname=<name>`` on the kernel command line. Applying them is idempotent: the
address and the route are *replaced* (a kernel that configured the same address from ``ip=``
already, or a second run, changes nothing), and ``/etc/resolv.conf``, ``/etc/hostname`` and
``/etc/hosts`` are rewritten in every root given (the base image's, and the workload's when it
runs in a root filesystem), a symbolic link in their place (``resolv.conf`` pointing at a
resolver stub, say) replaced by a file.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from .constants import (
    BUSYBOX,
    CMDLINE_DNS_KEY,
    CMDLINE_GATEWAY_KEY,
    CMDLINE_HOSTNAME_KEY,
    CMDLINE_IP_KEY,
    GUEST_NIC,
)
from .manifest import cmdline_value

_IP_TIMEOUT_S = 10


@dataclass(frozen=True)
class NetworkConfig:
    """What the launch parameters say about the guest's network; empty fields are left alone."""

    address: ipaddress.IPv4Interface | None = None
    gateway: ipaddress.IPv4Address | None = None
    nameservers: tuple[ipaddress.IPv4Address, ...] = ()
    hostname: str | None = None

    @classmethod
    def from_cmdline(cls, cmdline: str) -> NetworkConfig:
        """Read the ``volant.ip/gw/dns/hostname`` keys; ValueError naming a malformed value."""
        address = cmdline_value(cmdline, CMDLINE_IP_KEY)
        gateway = cmdline_value(cmdline, CMDLINE_GATEWAY_KEY)
        dns = cmdline_value(cmdline, CMDLINE_DNS_KEY) or ""
        try:
            return cls(
                ipaddress.IPv4Interface(address) if address else None,
                ipaddress.IPv4Address(gateway) if gateway else None,
                tuple(ipaddress.IPv4Address(server) for server in dns.split(",") if server),
                cmdline_value(cmdline, CMDLINE_HOSTNAME_KEY) or None,
            )
        except ValueError as exc:
            raise ValueError(f"a network launch parameter is malformed: {exc}") from None


def _ip(*arguments: str) -> None:
    subprocess.run([BUSYBOX, "ip", *arguments], check=True, capture_output=True, timeout=_IP_TIMEOUT_S)


def configure_nic(
    address: ipaddress.IPv4Interface, gateway: ipaddress.IPv4Address | None, device: str = GUEST_NIC
) -> None:
    """Bring ``device`` up with ``address`` and the default route through ``gateway``, replacing
    what is there (so running it again, or after the kernel's own ``ip=``, changes nothing).
    """
    _ip("link", "set", "dev", device, "up")
    _ip("addr", "replace", str(address), "dev", device)
    if gateway is not None:
        _ip("route", "replace", "default", "via", str(gateway), "dev", device)


def guest_files(config: NetworkConfig) -> dict[str, str]:
    """The files under ``etc/`` that ``config`` determines, by name, with their text."""
    files = {}
    if config.nameservers:
        files["resolv.conf"] = "".join(f"nameserver {server}\n" for server in config.nameservers)
    if config.hostname:
        files["hostname"] = config.hostname + "\n"
        hosts = "127.0.0.1\tlocalhost\n"
        if config.address is not None:
            hosts += f"{config.address.ip}\t{config.hostname}\n"
        else:
            hosts += f"127.0.1.1\t{config.hostname}\n"
        files["hosts"] = hosts
    return files


def write_etc(root: str, files: dict[str, str]) -> None:
    """Write ``files`` into ``<root>/etc`` (made when missing) without following a symbolic link:
    a link named ``etc`` is refused (OSError), a link in a file's place is replaced by the file.
    """
    if not files:
        return
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir("etc", 0o755, dir_fd=root_fd)
        etc_fd = os.open("etc", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
    finally:
        os.close(root_fd)
    try:
        for name, text in files.items():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=etc_fd)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=etc_fd)
            with os.fdopen(fd, "w") as out:
                out.write(text)
    finally:
        os.close(etc_fd)


def apply(config: NetworkConfig, roots: Iterable[str]) -> None:
    """Configure the NIC, the host name and the files of every root in ``roots`` from ``config``."""
    if config.address is not None:
        configure_nic(config.address, config.gateway)
    if config.hostname:
        socket.sethostname(config.hostname)
    files = guest_files(config)
    for root in roots:
        write_etc(root, files)
