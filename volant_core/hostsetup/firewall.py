"""NAT masquerade and forward rules for the VMs' subnet: an nftables table of Volant's own, or
iptables rules marked with a comment where ``nft`` is missing.

The rules: the subnet is masqueraded out of every interface but the bridge; the forward path lets
the VMs out, lets replies and published (DNAT) ports in, and drops other new connections routed to
the bridge (the Go original accepted everything towards it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Protocol

from volant_core.hostsetup.errors import HostSetupError
from volant_core.hostsetup.options import SetupOptions

#: nftables family and name of the table ``volar setup`` owns.
NFT_TABLE = "ip volant_setup"

#: The ruleset file the nftables backend loads (and re-loads at boot).
NFT_FILE = Path("/etc/volant/setup.nft")

#: Comment that marks the iptables rules ``volar setup`` adds.
IPTABLES_MARK = "volant-setup"


def _run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as err:
        raise HostSetupError(f"cannot run {argv[0]}: {err}") from err
    if check and done.returncode != 0:
        raise HostSetupError(f"`{' '.join(argv)}` failed: {done.stderr.strip() or done.stdout.strip()}")
    return done


class Firewall(Protocol):
    """One way of installing the rules: ``current`` lists what of ours is loaded (None: nothing)."""

    name: str

    def ruleset(self) -> str:
        """The rules wanted, as text (a change of options changes it)."""

    def current(self) -> str | None:
        """Our rules as the tool lists them now, or None when none are loaded."""

    def files(self) -> dict[Path, str]:
        """Files (host paths) this backend needs, with their content, written before :meth:`load`."""

    def load(self) -> None:
        """Install the rules, replacing ours if some are loaded."""

    def remove(self) -> None:
        """Remove every rule of ours; none loaded is fine."""

    def restore(self, listing: str) -> None:
        """Put back rules of ours that were loaded before setup ran (``current()``'s text)."""


class NftFirewall:
    """The table ``ip volant_setup``, written to :data:`NFT_FILE` and loaded with ``nft -f``."""

    name = "nftables"

    def __init__(self, nft: str, options: SetupOptions) -> None:
        """Use the ``nft`` binary at ``nft`` for ``options``' bridge and subnet."""
        self._nft = nft
        self._options = options

    def ruleset(self) -> str:
        """The file's text: replaces the table atomically when loaded."""
        bridge, subnet = self._options.bridge, self._options.subnet
        return f"""# Written by `volar setup`; `volar setup --uninstall` removes it. Loaded with nft -f.
add table {NFT_TABLE}
delete table {NFT_TABLE}
table {NFT_TABLE} {{
\tchain postrouting {{
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip saddr {subnet} oifname != "{bridge}" masquerade
\t}}
\tchain forward {{
\t\ttype filter hook forward priority filter; policy accept;
\t\tiifname "{bridge}" accept
\t\toifname "{bridge}" ct state established,related accept
\t\toifname "{bridge}" ct status dnat accept
\t\toifname "{bridge}" drop
\t}}
}}
"""

    def current(self) -> str | None:
        """``nft list table ip volant_setup``, or None when the table does not exist."""
        done = _run([self._nft, "list", "table", *NFT_TABLE.split()], check=False)
        if done.returncode != 0:
            if "No such file or directory" in done.stderr:
                return None
            raise HostSetupError(
                f"cannot list the nftables table {NFT_TABLE}: {done.stderr.strip()} (run as root)"
            )
        return done.stdout

    def files(self) -> dict[Path, str]:
        """The ruleset file."""
        return {NFT_FILE: self.ruleset()}

    def load(self) -> None:
        """``nft -f`` the ruleset file (under ``--root``)."""
        _run([self._nft, "-f", str(self._options.path(NFT_FILE))])

    def remove(self) -> None:
        """Delete the table."""
        if self.current() is not None:
            _run([self._nft, "delete", "table", *NFT_TABLE.split()])

    def restore(self, listing: str) -> None:
        """Load a table listing saved before setup replaced it."""
        done = subprocess.run(
            [self._nft, "-f", "-"], input=listing, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise HostSetupError(f"cannot restore the nftables table {NFT_TABLE}: {done.stderr.strip()}")


class IptablesFirewall:
    """Rules in the built-in ``nat POSTROUTING`` and ``filter FORWARD`` chains, marked with a comment."""

    name = "iptables"

    def __init__(self, iptables: str, options: SetupOptions) -> None:
        """Use the ``iptables`` binary at ``iptables`` for ``options``' bridge and subnet."""
        self._iptables = iptables
        self._options = options

    def rules(self) -> list[tuple[str, str, list[str]]]:
        """``(table, chain, match and target)`` of each rule, in the order they must sit in."""
        bridge, subnet = self._options.bridge, str(self._options.subnet)
        mark = ["-m", "comment", "--comment", IPTABLES_MARK]
        return [
            ("nat", "POSTROUTING", ["-s", subnet, "!", "-o", bridge, *mark, "-j", "MASQUERADE"]),
            ("filter", "FORWARD", ["-i", bridge, *mark, "-j", "ACCEPT"]),
            (
                "filter",
                "FORWARD",
                [
                    "-o",
                    bridge,
                    "-m",
                    "conntrack",
                    "--ctstate",
                    "RELATED,ESTABLISHED,DNAT",
                    *mark,
                    "-j",
                    "ACCEPT",
                ],
            ),
            ("filter", "FORWARD", ["-o", bridge, *mark, "-j", "DROP"]),
        ]

    def ruleset(self) -> str:
        """The rules, one ``-t table -A chain ...`` line each."""
        return "\n".join(f"-t {table} -A {chain} {' '.join(spec)}" for table, chain, spec in self.rules())

    def _ours(self) -> list[tuple[str, str]]:
        """``(table, -A line)`` of every rule carrying our comment."""
        found = []
        for table, chain in (("nat", "POSTROUTING"), ("filter", "FORWARD")):
            listing = _run([self._iptables, "-w", "-t", table, "-S", chain]).stdout
            found += [(table, line) for line in listing.splitlines() if IPTABLES_MARK in line]
        return found

    def current(self) -> str | None:
        """Our rules as ``iptables -S`` prints them, or None when there are none."""
        return "\n".join(f"-t {table} {line}" for table, line in self._ours()) or None

    def files(self) -> dict[Path, str]:
        """None: the ``volant-setup`` unit re-adds the rules at boot."""
        return {}

    def load(self) -> None:
        """Remove ours, then insert the rules (FORWARD first, so that a DROP policy or rule does not win)."""
        self.remove()
        position = 1
        for table, chain, spec in self.rules():
            if chain == "FORWARD":
                _run([self._iptables, "-w", "-t", table, "-I", chain, str(position), *spec])
                position += 1
            else:
                _run([self._iptables, "-w", "-t", table, "-A", chain, *spec])

    def remove(self) -> None:
        """Delete every rule carrying our comment."""
        for table, line in self._ours():
            _run([self._iptables, "-w", "-t", table, "-D", *line.split()[1:]])

    def restore(self, listing: str) -> None:
        """Re-add rules listed by :meth:`current` before setup ran."""
        for line in listing.splitlines():
            _, table, _, *spec = line.split()
            _run([self._iptables, "-w", "-t", table, "-A", *spec])


def firewall_named(name: str, options: SetupOptions) -> Firewall:
    """The backend called ``name`` (as recorded by an earlier run)."""
    binary = {"nftables": "nft", "iptables": "iptables"}[name]
    path = shutil.which(binary)
    if path is None:
        raise HostSetupError(
            f"setup loaded its rules with {binary}, which is no longer on PATH; reinstall it"
        )
    return NftFirewall(path, options) if name == "nftables" else IptablesFirewall(path, options)


def choose_firewall(options: SetupOptions) -> Firewall:
    """nftables when ``nft`` is on PATH, else iptables; :class:`HostSetupError` when neither is."""
    if (nft := shutil.which("nft")) is not None:
        return NftFirewall(nft, options)
    if (iptables := shutil.which("iptables")) is not None:
        return IptablesFirewall(iptables, options)
    raise HostSetupError(
        "neither nft nor iptables is on PATH: install nftables (apt-get install nftables), "
        "or iptables, then run `volar setup` again"
    )
