"""What ``volar --help`` and shell completion list: every command's name and help, kept in a cache.

Listing the commands needs the core's command modules and the installed plugins
(``volant_register_commands``): about half a second of imports. The listing is kept in
``$XDG_CACHE_HOME/volant/volar/`` (``~/.cache/volant/volar/``), one file per Python environment,
under a key (:func:`fingerprint`) that changes whenever the installed distributions, the Python
path, ``VOLANT_DISABLE_PLUGINS`` or a core command's module change; computing it takes a
directory listing per ``sys.path`` entry and a ``stat`` per distribution, no import. On another
key the listing is built again and the file rewritten (atomically).

The file only ever holds text: names, help and the warnings building it printed. Running a command
always resolves it through the core's table or the real plugins, never through this file. A file
that is unreadable, too large, a symbolic link, another user's, of another format or key, or
malformed in any way is ignored (and rewritten); when it cannot be written, volar still works,
building the listing on every call. See docs/adr/0039-metrics-and-cli-startup.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TypeGuard

import click

#: Format of the cache file; a file with another one is ignored.
FORMAT = "volar-commands/1"
#: Largest cache file read (bytes); a larger one is ignored.
MAX_BYTES = 1 << 20
#: Where a distribution's metadata lives next to its packages (their names carry the version).
METADATA_SUFFIXES = (".dist-info", ".egg-info")
#: Environment variable naming plugins volar must not load (see :mod:`volant_core.plugins`).
DISABLE_ENV = "VOLANT_DISABLE_PLUGINS"


@dataclass(frozen=True)
class CommandSummary:
    """What the listing of one command shows: click's help fields, nothing that runs."""

    help: str | None
    short_help: str | None
    hidden: bool
    deprecated: bool | str

    @classmethod
    def of(cls, command: click.Command) -> CommandSummary:
        """The summary of a real command."""
        return cls(command.help, command.short_help, command.hidden, command.deprecated)

    def stand_in(self, name: str) -> click.Command:
        """A command that cannot run but lists as the real one (click formats its help)."""
        return click.Command(
            name, help=self.help, short_help=self.short_help, hidden=self.hidden, deprecated=self.deprecated
        )


@dataclass(frozen=True)
class Listing:
    """Every command volar has, by name, and the warnings building the listing printed."""

    commands: dict[str, CommandSummary]
    warnings: tuple[str, ...] = ()

    def stand_ins(self) -> dict[str, click.Command]:
        """A listing-only command per name (see :meth:`CommandSummary.stand_in`)."""
        return {name: summary.stand_in(name) for name, summary in self.commands.items()}

    def to_json(self, key: str) -> str:
        """The cache file's content for ``key``."""
        commands = {name: vars(summary) for name, summary in sorted(self.commands.items())}
        return json.dumps(
            {"format": FORMAT, "key": key, "commands": commands, "warnings": list(self.warnings)}
        )

    @classmethod
    def from_json(cls, text: str, key: str) -> Listing | None:
        """The listing a cache file holds for ``key``; None unless it is exactly that, well formed."""
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != key:
            return None
        commands, warnings = data.get("commands"), data.get("warnings")
        if not isinstance(commands, dict) or not _strings(warnings):
            return None
        summaries = {name: _summary(name, fields) for name, fields in commands.items()}
        if any(summary is None for summary in summaries.values()):
            return None
        return cls({name: s for name, s in summaries.items() if s is not None}, tuple(warnings))


def _strings(value: Any) -> TypeGuard[list[str]]:
    """Whether ``value`` is a list of strings."""
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _summary(name: str, fields: Any) -> CommandSummary | None:
    """The summary of a cache entry, or None when the name or a field is not what it must be."""
    if not name or name.split() != [name] or not isinstance(fields, dict):
        return None
    if set(fields) != {"help", "short_help", "hidden", "deprecated"}:
        return None
    help_, short_help, hidden, deprecated = (
        fields[k] for k in ("help", "short_help", "hidden", "deprecated")
    )
    if not all(value is None or isinstance(value, str) for value in (help_, short_help)):
        return None
    if not isinstance(hidden, bool) or not isinstance(deprecated, bool | str):
        return None
    return CommandSummary(help_, short_help, hidden, deprecated)


def cache_file() -> Path | None:
    """This Python environment's listing file, or None when there is no home to keep it in."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    try:
        root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    except RuntimeError:  # no home directory
        return None
    environment = hashlib.sha256(os.fsencode(sys.prefix)).hexdigest()[:16]
    return root / "volant" / "volar" / f"commands-{environment}.json"


def fingerprint(core_commands: Mapping[str, str]) -> str:
    """The key of the listing: it changes when what ``volar`` would list may have changed.

    It covers the Python path, every distribution's metadata directory on it (name, which carries
    the version, modification time and inode: an install, upgrade, reinstall or uninstall changes
    it), ``VOLANT_DISABLE_PLUGINS``, and the core's command table with each command module's file
    (modification time and size).
    """
    parts: list[Any] = [FORMAT, sys.path, os.environ.get(DISABLE_ENV, "")]
    for entry in sys.path:
        parts.append(_distributions(entry or "."))
    for name, target in sorted(core_commands.items()):
        parts.append([name, target, *_file_state(target.partition(":")[0])])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _distributions(directory: str) -> list[Any]:
    """``[name, mtime_ns, inode]`` of each distribution's metadata directory in ``directory``."""
    try:
        names = sorted(name for name in os.listdir(directory) if name.endswith(METADATA_SUFFIXES))
    except OSError:  # not a directory (a zip, a missing entry)
        return []
    found = []
    for name in names:
        try:
            state = os.stat(os.path.join(directory, name))
        except OSError:
            continue
        found.append([name, state.st_mtime_ns, state.st_ino])
    return found


def _file_state(module: str) -> list[Any]:
    """``[path, mtime_ns, size]`` of ``module``'s source, found without importing it."""
    spec = find_spec(module)
    origin = spec.origin if spec is not None else None
    if origin is None:
        return [None]
    try:
        state = os.stat(origin)
    except OSError:
        return [origin]
    return [origin, state.st_mtime_ns, state.st_size]


def read_listing(path: Path, key: str) -> Listing | None:
    """The listing cached at ``path`` for ``key``, or None when there is none to trust."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO must not block volar
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_uid != os.geteuid():  # another user's file
            return None
        with open(fd, "rb", closefd=False) as file:
            raw = file.read(MAX_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:
        return None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return None
    return Listing.from_json(text, key)


def write_listing(path: Path, key: str, listing: Listing) -> None:
    """Cache ``listing`` at ``path`` for ``key``, atomically; nothing when that is not possible."""
    import tempfile  # only when the listing is rebuilt

    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".commands-", suffix=".tmp")
    except OSError:  # a read-only or unreachable cache directory
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(listing.to_json(key))
        os.replace(temporary, path)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
