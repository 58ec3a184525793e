"""The cloud-init NoCloud seed: kestrel finds it, mounts it read-only and applies its plan before the
workload starts (PID 1 only; the subset and its limits: docs/guest-contract.md).

The seed is the virtio disk whose file system label is ``CIDATA`` (vfat) or ``cidata`` (iso9660),
read from the disk's first sectors (the guest has no blkid). It stays mounted read-only at
:data:`~.constants.SEED_MOUNT`. What kestrel applies is the seed's
:data:`~.constants.SEED_PLAN_FILE` (:mod:`volant_core.seedplan`): a root file system with its own
cloud-init (``/usr/bin/cloud-init``) reads the seed itself, so kestrel then applies nothing.
Order: ``bootcmd``, ``write_files``, host name, ``eth0`` network, ``runcmd``, the user-data script.
Commands and the script run with ``/bin/sh`` (in the workload's root when it has one), their output
on the console. Every step that fails is reported on the console; the boot goes on.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import dhcp, network
from .console import say
from .constants import (
    BUSYBOX,
    GUEST_NIC,
    SEED_COMMAND_TIMEOUT_S,
    SEED_LABEL,
    SEED_MOUNT,
    SEED_PLAN_FILE,
    SEED_PLAN_VERSION,
)

#: Longest wait for a virtio disk's device node once its driver made it.
_NODE_WAIT_S = 5.0
_POLL_S = 0.05
#: Bytes of a disk read to find its label: the ISO 9660 primary volume descriptor ends here.
_LABEL_BYTES = 0x8800
_COMMAND_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}


def disk_label(header: bytes) -> str | None:
    """The volume label of an ISO 9660 or FAT file system whose first bytes are ``header``."""
    if header[0x8001:0x8006] == b"CD001":
        return header[0x8028:0x8048].decode("ascii", "replace").strip() or None
    if header[0x1FE:0x200] != b"\x55\xaa":
        return None
    for signature, label in ((0x42, 0x47), (0x26, 0x2B)):  # FAT32, then FAT12/16 extended boot record
        if header[signature] == 0x29:
            return header[label : label + 11].decode("ascii", "replace").strip() or None
    return None


def find_seed(sys_block: Path = Path("/sys/block"), dev: Path = Path("/dev")) -> Path | None:
    """The device node of the seed disk, or None when no virtio disk carries the seed's label."""
    for name in sorted(entry.name for entry in sys_block.glob("vd*")):
        node = dev / name
        deadline = time.monotonic() + _NODE_WAIT_S
        while not node.exists() and time.monotonic() < deadline:
            time.sleep(_POLL_S)
        try:
            with node.open("rb") as disk:
                label = disk_label(disk.read(_LABEL_BYTES))
        except OSError:
            continue
        if label is not None and label.lower() == SEED_LABEL:
            return node
    return None


def mount_seed(device: Path, target: Path = Path(SEED_MOUNT)) -> None:
    """Mount ``device`` read-only on ``target`` (vfat, else iso9660); OSError when neither takes it."""
    target.mkdir(parents=True, exist_ok=True)
    failures = []
    for fstype in ("vfat", "iso9660"):
        done = subprocess.run(
            [BUSYBOX, "mount", "-t", fstype, "-o", "ro", str(device), str(target)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return
        failures.append(f"{fstype}: {done.stderr.strip()}")
    raise OSError(f"cannot mount the seed {device}: {'; '.join(failures)}")


def _ids(root: Path, table: str, name: str) -> int | None:
    """The numeric id of ``name`` in ``<root>/etc/<table>`` (``passwd`` or ``group``), or None."""
    if name.isdigit():
        return int(name)
    with contextlib.suppress(OSError):
        for line in (root / "etc" / table).read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
    return None


def _owner(root: Path, owner: str) -> tuple[int, int] | None:
    user, _, group = owner.partition(":")
    uid = _ids(root, "passwd", user)
    gid = _ids(root, "group", group or user)
    return (uid, gid) if uid is not None and gid is not None else None


def write_files(root: Path, files: Iterable[dict[str, Any]]) -> None:
    """Write the plan's ``write_files`` under ``root`` (the guest's view of ``/``): parents made,
    ``permissions`` set, ``owner`` resolved in ``root``'s ``/etc/passwd`` and ``/etc/group`` (an owner
    it does not name leaves the file root's, said on the console).
    """
    for entry in files:
        path = root / entry["path"].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab" if entry["append"] else "wb") as out:
            out.write(base64.b64decode(entry["content_b64"]))
        path.chmod(entry["permissions"])
        ids = _owner(root, entry["owner"])
        if ids is None:
            say(
                f"kestrel: seed: {entry['path']}: owner {entry['owner']!r} unknown in the guest; left to root"
            )
        else:
            os.chown(path, *ids)
        say(f"kestrel: seed: wrote {entry['path']}")


def run_shell(command: str, root: str | None, what: str) -> None:
    """Run ``command`` with ``/bin/sh -c`` (chrooted into ``root`` when given), output on the console."""
    say(f"kestrel: seed: {what}: {command}")
    argv = ["/bin/sh", "-c", command]
    _run(argv, root, what)


def _run(argv: list[str], root: str | None, what: str) -> None:
    def enter_root() -> None:
        if root is not None:
            os.chroot(root)
        os.chdir("/")

    try:
        done = subprocess.run(
            argv, stdout=2, stderr=2, env=_COMMAND_ENV, preexec_fn=enter_root, timeout=SEED_COMMAND_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        say(f"kestrel: seed: {what} killed after {SEED_COMMAND_TIMEOUT_S} s")
        return
    if done.returncode != 0:
        say(f"kestrel: seed: {what} exited with {done.returncode}")


def _run_script(seed: Path, root: str | None) -> None:
    """Copy the user-data script into the guest's ``/run`` and execute it (its ``#!`` line decides how)."""
    target = Path(root or "/") / "run" / "volant-user-data"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes((seed / "user-data").read_bytes())
    target.chmod(0o700)
    say("kestrel: seed: running the user-data script")
    _run(["/run/volant-user-data"], root, "the user-data script")


def _apply_hostname(hostname: str, cmdline: str, roots: list[str]) -> None:
    current = network.NetworkConfig.from_cmdline(cmdline)
    socket.sethostname(hostname)
    files = network.guest_files(network.NetworkConfig(address=current.address, hostname=hostname))
    for root in roots:
        network.write_etc(root, files)
    say(f"kestrel: seed: hostname {hostname}")


def network_mode_owns_nic(cmdline: str) -> bool:
    """Whether the VM's network mode configures the guest NIC itself (an address or DHCP on the
    command line): the seed's network-config then does not touch it.
    """
    return dhcp.wanted(cmdline) or network.NetworkConfig.from_cmdline(cmdline).address is not None


def _apply_network(nic: dict[str, Any], cmdline: str, roots: list[str]) -> None:
    if network_mode_owns_nic(cmdline):
        say(f"kestrel: seed: network-config for {GUEST_NIC} not applied: the network mode configures it")
        return
    if not Path("/sys/class/net", GUEST_NIC).exists():
        say(f"kestrel: seed: network-config for {GUEST_NIC} not applied: the VM has no {GUEST_NIC}")
        return
    if nic["dhcp4"]:
        say(f"kestrel: seed: {GUEST_NIC} lease (DHCP): {dhcp.request_lease(GUEST_NIC)}")
    gateway = ipaddress.IPv4Address(nic["gateway"]) if nic["gateway"] else None
    for address in nic["addresses"]:
        network.configure_nic(ipaddress.IPv4Interface(address), gateway)
        say(f"kestrel: seed: {GUEST_NIC} is {address} (gateway {gateway or 'none'})")
    servers = tuple(ipaddress.IPv4Address(server) for server in nic["nameservers"])
    files = network.guest_files(network.NetworkConfig(nameservers=servers))
    for root in roots:
        network.write_etc(root, files)


def _step(what: str, action: Callable[[], object]) -> None:
    try:
        action()
    except Exception as exc:
        say(f"kestrel: seed: {what} failed: {type(exc).__name__}: {exc}")


def apply_plan(plan: dict[str, Any], seed: Path, cmdline: str, root: str | None) -> None:
    """Apply ``plan`` (read from the seed mounted at ``seed``) to the guest, in the documented order;
    ``root`` is the workload's root when it has its own.
    """
    for item in plan["not_applied"]:
        say(f"kestrel: seed: {item} not applied (an image with its own cloud-init applies it)")
    roots = ["/", *([root] if root else [])]
    for index, command in enumerate(plan["bootcmd"]):
        run_shell(command, root, f"bootcmd[{index}]")
    _step("write_files", lambda: write_files(Path(root or "/"), plan["write_files"]))
    if plan["hostname"]:
        _step("setting the host name", lambda: _apply_hostname(plan["hostname"], cmdline, roots))
    if plan["network"] is not None:
        _step(f"configuring {GUEST_NIC}", lambda: _apply_network(plan["network"], cmdline, roots))
    for index, command in enumerate(plan["runcmd"]):
        run_shell(command, root, f"runcmd[{index}]")
    if plan["script"]:
        _step("the user-data script", lambda: _run_script(seed, root))


def apply_seed(cmdline: str, root: str | None) -> None:
    """Find, mount and apply the VM's NoCloud seed, if it has one."""
    device = find_seed()
    if device is None:
        return
    mount = Path(SEED_MOUNT)
    mount_seed(device, mount)
    say(f"kestrel: seed: {device} mounted read-only on {mount}")
    apply_mounted_seed(mount, cmdline, root)


def apply_mounted_seed(mount: Path, cmdline: str, root: str | None) -> None:
    """Apply the plan of the seed mounted at ``mount``, unless the workload's ``root`` has its own
    cloud-init (which reads the seed itself) or the seed carries no plan kestrel knows.
    """
    if root is not None and Path(root, "usr/bin/cloud-init").exists():
        say(
            "kestrel: seed: the root file system has its own cloud-init, which reads the seed; "
            "kestrel applies nothing"
        )
        return
    try:
        plan = json.loads((mount / SEED_PLAN_FILE).read_text())
    except FileNotFoundError:
        say(
            f"kestrel: seed: no {SEED_PLAN_FILE} on the seed (not built by volant-cloudinit); nothing applied"
        )
        return
    if plan.get("version") != SEED_PLAN_VERSION:
        say(
            f"kestrel: seed: {SEED_PLAN_FILE} has version {plan.get('version')!r}, "
            f"not {SEED_PLAN_VERSION}; nothing applied"
        )
        return
    apply_plan(plan, mount, cmdline, root)
