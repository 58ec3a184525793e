"""Run ``volar setup``: plan, apply (undoing this run's changes if a step fails), and uninstall."""

from __future__ import annotations

from pathlib import Path

from volant_core.hostsetup import record as records
from volant_core.hostsetup.errors import HostSetupError
from volant_core.hostsetup.files import UNIT_DIR
from volant_core.hostsetup.firewall import Firewall, choose_firewall, firewall_named
from volant_core.hostsetup.options import SetupOptions
from volant_core.hostsetup.plan import Planner, Step, systemctl, undo
from volant_core.hostsetup.record import RECORD_FILE, Change, Record


def record_path(options: SetupOptions) -> Path:
    """Where the record of ``options.root`` is kept."""
    return options.path(RECORD_FILE)


def plan(options: SetupOptions) -> tuple[list[Step], Record]:
    """The steps this host needs, and the record they add to (the earlier one, or a new one)."""
    record = records.load(record_path(options)) or Record()
    backend = record.firewall.get("backend")
    firewall: Firewall = firewall_named(backend, options) if backend else choose_firewall(options)
    return Planner(options, firewall, record).plan(), record


def apply(options: SetupOptions, steps: list[Step], record: Record) -> None:
    """Take ``steps`` in order, recording each change. When one fails, this run's changes are undone
    newest first, the record is put back as it was, and :class:`HostSetupError` says what failed.
    """
    path = record_path(options)
    before = path.read_bytes() if path.exists() else None
    done: list[Change] = []
    for step in steps:
        try:
            step.do()
        except BaseException as err:  # Ctrl-C too: nothing half-applied
            if before is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(before)
            left = _undo_all(done, options)
            message = f"{step.summary} failed: {err}; the changes of this run were undone"
            if left:
                message += "; these could not be: " + "; ".join(f"{_describe(c)}: {e}" for c, e in left)
            if not isinstance(err, Exception):
                raise
            raise HostSetupError(message) from err
        if step.change is not None:
            done.append(step.change)
            record.add(step.change)
        if path.parent.is_dir():
            records.save(path, record)


def uninstall(options: SetupOptions) -> list[str]:
    """Undo every recorded change, newest first, and remove the record; what was undone.

    A change that cannot be undone stays in the record, and :class:`HostSetupError` names it.
    """
    path = record_path(options)
    record = records.load(path)
    if record is None:
        return []
    path.unlink()
    failed = _undo_all(record.changes, options)
    if options.systemctl and any(
        Path(c.target).parent == UNIT_DIR for c in record.changes if c.kind == "file"
    ):
        systemctl("daemon-reload")
    if failed:
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = [change for change in record.changes if any(change is c for c, _ in failed)]
        records.save(path, Record(kept, record.firewall))
        reasons = "; ".join(f"{_describe(change)}: {error}" for change, error in failed)
        raise HostSetupError(f"could not undo: {reasons} (kept in {path}; run --uninstall again)")
    return [_describe(change) for change in reversed(record.changes)]


def _undo_all(changes: list[Change], options: SetupOptions) -> list[tuple[Change, str]]:
    """Undo ``changes`` newest first, going on past failures; those that failed, with why."""
    failed = []
    for change in reversed(changes):
        try:
            firewall = firewall_named(change.target, options) if change.kind == "firewall" else None
            undo(change, options, firewall)
        except Exception as err:
            failed.append((change, str(err)))
    return failed


def _describe(change: Change) -> str:
    """A change as people read it, e.g. ``bridge vbr0``."""
    value = f" {change.value}" if change.value else ""
    prior = f" (back to {change.prior})" if change.kind == "sysctl" else ""
    return f"{change.kind} {change.target}{value}{prior}"
