"""The plan: the steps that bring this host to what ``volar setup`` was asked, each with its undo.

A step is planned only when the host differs from what is wanted, so a second run plans nothing.
The order matters: files the network steps read come first, the systemd units after the network
steps, ``systemctl`` last.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from volant_core.hostsetup import links, sysctl, users
from volant_core.hostsetup.errors import HostSetupError
from volant_core.hostsetup.files import SETUP_UNIT, VOLANTD_UNIT, FileSpec, wanted_files
from volant_core.hostsetup.firewall import Firewall
from volant_core.hostsetup.options import SetupOptions
from volant_core.hostsetup.record import RECORD_FILE, Change, Record


@dataclass(frozen=True)
class Step:
    """One planned change: what it says, what it does, and the change to record (None: nothing to undo)."""

    summary: str
    do: Callable[[], object]
    change: Change | None


def systemctl(*args: str) -> str:
    """Run ``systemctl``; its output. :class:`HostSetupError` when it fails."""
    try:
        done = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
    except OSError as err:
        raise HostSetupError(
            f"cannot run systemctl: {err}; on a host without systemd use --no-systemctl"
        ) from err
    if done.returncode != 0 and args[0] != "is-enabled":
        raise HostSetupError(
            f"`systemctl {' '.join(args)}` failed: {done.stderr.strip()}; "
            "on a host without systemd use --no-systemctl"
        )
    return done.stdout.strip()


class Planner:
    """Builds the steps for one run from the host's current state."""

    def __init__(self, options: SetupOptions, firewall: Firewall, record: Record) -> None:
        """Plan ``options`` with ``firewall``; ``record`` holds what earlier runs did."""
        self.options = options
        self.firewall = firewall
        self.record = record
        self.steps: list[Step] = []
        self._directories: set[Path] = set()

    def plan(self) -> list[Step]:
        """Every step this host needs, in order."""
        early, units = wanted_files(self.options, self.firewall.files())
        self._directory(RECORD_FILE.parent)
        for spec in early:
            self._file(spec)
        self._vmm_user()
        self._bridge()
        self._sysctl()
        self._firewall()
        before_units = len(self.steps)
        for spec in units:
            self._file(spec)
        if self.options.systemctl:
            self._systemd(reload=len(self.steps) > before_units)
        return self.steps

    def _directory(self, path: Path) -> None:
        """Steps creating ``path`` and its missing parents, top first."""
        missing = []
        for directory in (path, *path.parents):
            if self.options.path(directory).exists() or directory in self._directories:
                break
            missing.append(directory)
        for directory in reversed(missing):
            self._directories.add(directory)
            full = self.options.path(directory)
            self.steps.append(
                Step(
                    f"create directory {directory}",
                    partial(full.mkdir, mode=0o755),
                    Change("directory", str(directory)),
                )
            )

    def _file(self, spec: FileSpec) -> None:
        full = self.options.path(spec.path)
        prior = None
        if full.exists() or full.is_symlink():
            if not full.is_file() or (full.is_symlink() and not spec.keep_existing):
                raise HostSetupError(
                    f"{full} exists and is not a regular file (setup does not write through links); "
                    "move it away and run again"
                )
            if spec.keep_existing:
                if not full.read_text().strip():
                    raise HostSetupError(
                        f"--api-key-file: {spec.path} is empty; write a key into it or remove it "
                        "so that setup generates one"
                    )
                return
            content = full.read_bytes()
            mode = full.stat().st_mode & 0o7777
            if content == spec.content.encode() and mode == spec.mode:
                return
            prior = {"content": base64.b64encode(content).decode(), "mode": mode}
        self._directory(spec.path.parent)
        verb = "replace" if prior else "write"
        self.steps.append(
            Step(
                f"{verb} {spec.path}",
                lambda: write_file(full, spec.content.encode(), spec.mode),
                Change("file", str(spec.path), prior),
            )
        )

    def _vmm_user(self) -> None:
        """The user whose groups VMMs run with, on a root that has users (``--root`` of a staging tree
        may not)."""
        root = self.options.root
        if not (root / "etc/passwd").is_file() or users.user_exists(root):
            return
        self.steps.append(
            Step(
                f"create the system user {users.VMM_USER} (VMMs run with its groups)",
                partial(users.create_user, root),
                Change("user", users.VMM_USER),
            )
        )

    def _bridge(self) -> None:
        bridge, interface = self.options.bridge, self.options.interface
        kind = links.link_kind(bridge)
        if kind is None:
            self.steps.append(
                Step(f"create bridge {bridge}", lambda: links.create_bridge(bridge), Change("bridge", bridge))
            )
        elif kind != "bridge":
            raise HostSetupError(
                f"--bridge: {bridge} exists and is a {kind or 'network device'}, not a bridge; "
                "name another bridge with --bridge"
            )
        if interface not in links.addresses(bridge):
            self.steps.append(
                Step(
                    f"add address {interface} to {bridge}",
                    lambda: links.add_address(bridge, interface),
                    Change("address", bridge, value=str(interface)),
                )
            )
        if not links.is_up(bridge):
            self.steps.append(
                Step(f"bring {bridge} up", lambda: links.set_up(bridge, True), Change("link-up", bridge))
            )

    def _sysctl(self) -> None:
        value = sysctl.read(sysctl.IP_FORWARD)
        if value != "1":
            self.steps.append(
                Step(
                    f"set {sysctl.IP_FORWARD} = 1 (was {value})",
                    lambda: sysctl.write(sysctl.IP_FORWARD, "1"),
                    Change("sysctl", sysctl.IP_FORWARD, value),
                )
            )

    def _firewall(self) -> None:
        current = self.firewall.current()
        loaded = self.record.firewall
        wanted = self.firewall.ruleset()
        if current is not None and loaded.get("ruleset") == wanted and loaded.get("listing") == current:
            return
        firewall = self.firewall

        def load() -> None:
            firewall.load()
            self.record.firewall = {
                "backend": firewall.name,
                "ruleset": wanted,
                "listing": firewall.current() or "",
            }

        self.steps.append(
            Step(
                f"load the NAT and forward rules for {self.options.subnet} ({firewall.name})",
                load,
                Change("firewall", firewall.name, current),
            )
        )

    def _systemd(self, *, reload: bool) -> None:
        if reload:
            self.steps.append(Step("systemctl daemon-reload", partial(systemctl, "daemon-reload"), None))
        for unit, now in ((SETUP_UNIT, False), (VOLANTD_UNIT, True)):
            if systemctl("is-enabled", unit) != "enabled":
                args = ["enable", *(["--now"] if now else []), unit]
                self.steps.append(
                    Step(
                        f"systemctl {' '.join(args)}",
                        partial(systemctl, *args),
                        Change("unit", unit),
                    )
                )


def write_file(path: Path, content: bytes, mode: int) -> None:
    """Write ``content`` to ``path`` with ``mode`` (set before any byte is written)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(content)


def undo(change: Change, options: SetupOptions, firewall: Firewall | None) -> None:
    """Put back what was there before ``change``."""
    if change.kind == "directory":
        full = options.path(Path(change.target))
        if full.is_dir() and not any(full.iterdir()):
            full.rmdir()
    elif change.kind == "file":
        full = options.path(Path(change.target))
        if change.prior is None:
            full.unlink(missing_ok=True)
        else:
            write_file(full, base64.b64decode(change.prior["content"]), change.prior["mode"])
    elif change.kind == "user":
        users.delete_user(options.root, change.target)
    elif change.kind == "bridge":
        links.delete_link(change.target)
    elif change.kind == "address":
        links.remove_address(change.target, ipaddress.IPv4Interface(change.value))
    elif change.kind == "link-up":
        if links.link_kind(change.target) is not None:
            links.set_up(change.target, False)
    elif change.kind == "sysctl":
        sysctl.write(change.target, str(change.prior))
    elif change.kind == "firewall":
        assert firewall is not None
        firewall.remove()
        if change.prior is not None:
            firewall.restore(change.prior)
    elif change.kind == "unit":
        systemctl("disable", "--now", change.target)
    else:
        raise HostSetupError(f"the setup record holds an unknown change {change.kind!r}")
