"""Cloud Hypervisor v54's command line, parsed by the grammar in ``cloud-hypervisor-cli.md``.

Written by hand from the contract's table (not from the backend's code): every option, key and
value the contract does not allow is refused with :class:`ContractViolation`. The stand-in parses
its own argv with it, and the backend's argv tests check each emitted option with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

#: A value check: None when ``value`` is allowed, else why not.
Check = Callable[[str], str | None]


class ContractViolation(ValueError):
    """An argument the Cloud Hypervisor v54 contract does not allow."""


def _one_of(*allowed: str) -> Check:
    return lambda value: None if value in allowed else f"{value!r} is not one of {list(allowed)}"


def _matches(pattern: str, what: str) -> Check:
    compiled = re.compile(pattern)
    return lambda value: None if compiled.fullmatch(value) else f"{value!r} is not {what}"


def _any_text(value: str) -> str | None:
    return None if value else "an empty value"


BOOLEAN = _one_of("on", "off", "true", "false")
ON_OFF = _one_of("on", "off")
INTEGER = _matches(r"[0-9]+", "a number")
SIZE = _matches(r"[0-9]+[KMG]?", "a size (a number with an optional K, M or G suffix)")
PATH = _any_text
MAC = _matches(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", "a MAC address")
FD_LIST = _matches(r"\[[0-9]+(,[0-9]+)*\]", "a list of file descriptors [n,...]")
TOPOLOGY = _matches(r"[0-9]+:[0-9]+:[0-9]+:[0-9]+", "a topology <t>:<c>:<d>:<p>")
PCI_SYSFS = _matches(
    r"/sys/bus/pci/devices/[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]/",
    "/sys/bus/pci/devices/<BDF>/",
)
FILE_URL = _matches(r"file://.+", "a file:// URL")
ADDRESS = _matches(r"[0-9.]+", "an IPv4 address")


def _cid(value: str) -> str | None:
    return None if value.isdigit() and int(value) >= 3 else f"cid {value!r} is not a number >= 3"


@dataclass(frozen=True)
class KeyValueOption:
    """An option taking ``key=value`` pairs: the keys allowed, each with its value check."""

    keys: dict[str, Check]
    required: frozenset[str] = frozenset()
    #: Exactly one of these keys (``path=`` or ``fd=``), when set.
    one_of: frozenset[str] = frozenset()
    #: Valueless words allowed instead of pairs (``--serial off``).
    words: frozenset[str] = frozenset()

    def parse(self, option: str, argument: str) -> dict[str, str]:
        """The pairs of ``argument``; raises :class:`ContractViolation` on anything not allowed."""
        if argument in self.words:
            return {argument: ""}
        pairs: dict[str, str] = {}
        for item in _split(argument):
            key, equals, value = item.partition("=")
            if not equals:
                raise ContractViolation(f"{option}: {item!r} is not key=value")
            if key not in self.keys:
                raise ContractViolation(f"{option}: unknown key {key!r} (allowed: {sorted(self.keys)})")
            if key in pairs:
                raise ContractViolation(f"{option}: {key}= given twice")
            problem = self.keys[key](value)
            if problem is not None:
                raise ContractViolation(f"{option}: {key}={value}: {problem}")
            pairs[key] = value
        missing = sorted(self.required - set(pairs))
        if missing:
            raise ContractViolation(f"{option}: {', '.join(k + '=' for k in missing)} is required")
        if self.one_of and len(self.one_of & set(pairs)) != 1:
            raise ContractViolation(f"{option}: exactly one of {sorted(self.one_of)} is required")
        return pairs


@dataclass(frozen=True)
class PlainOption:
    """An option taking one plain argument (a path, a string, a word)."""

    check: Check

    def parse(self, option: str, argument: str) -> str:
        """``argument`` once checked."""
        problem = self.check(argument)
        if problem is not None:
            raise ContractViolation(f"{option}: {problem}")
        return argument


def _split(argument: str) -> list[str]:
    """Split on commas outside ``[...]`` (``fd=[3,4]`` is one pair)."""
    items, depth, current = [], 0, ""
    for char in argument:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return items


_CONSOLE = KeyValueOption({"file": PATH, "socket": PATH}, words=frozenset({"off", "null", "pty", "tty"}))

#: Options taking one argument, by name; ``REPEATABLE`` ones may be given once per device.
OPTIONS: dict[str, KeyValueOption | PlainOption] = {
    "--api-socket": KeyValueOption({"path": PATH, "fd": INTEGER}, one_of=frozenset({"path", "fd"})),
    "--kernel": PlainOption(PATH),
    "--initramfs": PlainOption(PATH),
    "--cmdline": PlainOption(lambda value: None),
    "--cpus": KeyValueOption(
        {"boot": INTEGER, "max": INTEGER, "topology": TOPOLOGY, "affinity": _any_text, "nested": ON_OFF}
    ),
    "--memory": KeyValueOption(
        {
            "size": SIZE,
            "shared": ON_OFF,
            "hugepages": ON_OFF,
            "hugepage_size": SIZE,
            "hotplug_method": _one_of("acpi", "virtio-mem"),
            "hotplug_size": SIZE,
            "prefault": ON_OFF,
            "thp": ON_OFF,
        }
    ),
    # ``backing_files`` is DiskConfig's ``backing_files`` in the OpenAPI file (the table lists a subset).
    "--disk": KeyValueOption(
        {
            "path": PATH,
            "readonly": BOOLEAN,
            "direct": BOOLEAN,
            "num_queues": INTEGER,
            "queue_size": INTEGER,
            "id": _any_text,
            "serial": _any_text,
            "image_type": _one_of("raw", "qcow2", "vhd", "vhdx"),
            "bw_size": INTEGER,
            "ops_size": INTEGER,
            "backing_files": BOOLEAN,
        }
    ),
    # The table's "..." elides keys; ``mtu`` is NetConfig's ``mtu`` in the OpenAPI file.
    "--net": KeyValueOption(
        {
            "tap": _any_text,
            "ip": ADDRESS,
            "mask": ADDRESS,
            "mac": MAC,
            "host_mac": MAC,
            "fd": FD_LIST,
            "num_queues": INTEGER,
            "queue_size": INTEGER,
            "id": _any_text,
            "offload_tso": BOOLEAN,
            "mtu": INTEGER,
        }
    ),
    "--vsock": KeyValueOption({"cid": _cid, "socket": PATH, "id": _any_text}, required=frozenset({"socket"})),
    "--device": KeyValueOption(
        {"path": PCI_SYSFS, "iommu": ON_OFF, "id": _any_text}, required=frozenset({"path"})
    ),
    "--serial": _CONSOLE,
    "--console": _CONSOLE,
    "--rng": KeyValueOption({"src": PATH}),
    "--event-monitor": KeyValueOption({"path": PATH, "fd": INTEGER}, one_of=frozenset({"path", "fd"})),
    "--log-file": PlainOption(PATH),
    "--seccomp": PlainOption(_one_of("true", "false", "log", "errno")),
    "--landlock-rules": KeyValueOption({"path": PATH, "access": _one_of("r", "w", "rw")}),
    "--restore": KeyValueOption(
        {"source_url": FILE_URL, "prefault": ON_OFF}, required=frozenset({"source_url"})
    ),
}
#: Options that may repeat, one argument per device (the contract's --fs and --pmem are not used here).
REPEATABLE = frozenset({"--disk", "--net", "--device"})
#: Options without an argument; ``-v`` may repeat.
FLAGS = frozenset({"--landlock", "--no-shutdown", "-v"})
#: Options the contract allows at most once: at most one vsock device among them.
_SINGLE = frozenset(OPTIONS) - REPEATABLE


@dataclass
class CommandLine:
    """A parsed command line: each option's parsed arguments in order, and the flags given."""

    options: dict[str, list[dict[str, str] | str]] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    def one(self, option: str) -> dict[str, str] | str | None:
        """The one argument of ``option``, or None when it was not given."""
        values = self.options.get(option)
        return values[0] if values else None

    def pairs(self, option: str) -> dict[str, str]:
        """The ``key=value`` pairs of the single ``option`` (empty when it was not given)."""
        value = self.one(option)
        assert value is None or isinstance(value, dict), f"{option} takes no key=value pairs"
        return value or {}

    def all_pairs(self, option: str) -> list[dict[str, str]]:
        """The pairs of every occurrence of the repeatable ``option``, in order."""
        return [value for value in self.options.get(option, []) if isinstance(value, dict)]


def parse_argv(argv: Sequence[str]) -> CommandLine:
    """Parse Cloud Hypervisor's arguments (without the program name) by the contract's grammar.

    Raises :class:`ContractViolation` naming the first option, key or value it does not allow.
    """
    parsed = CommandLine()
    index = 0
    while index < len(argv):
        option = argv[index]
        index += 1
        if option in FLAGS:
            if option in parsed.flags and option != "-v":
                raise ContractViolation(f"{option} given twice")
            parsed.flags.append(option)
            continue
        grammar = OPTIONS.get(option)
        if grammar is None:
            raise ContractViolation(f"unknown option {option!r}")
        if option in _SINGLE and option in parsed.options:
            raise ContractViolation(f"{option} given twice (at most one is allowed)")
        if index >= len(argv):
            raise ContractViolation(f"{option} needs an argument")
        parsed.options.setdefault(option, []).append(grammar.parse(option, argv[index]))
        index += 1
    return parsed
