"""Removing a VM's runtime directory in step with its row, so that a crash never leaves one without
the other unnoticed.

A deleted VM's directory is first renamed aside (``.deleting.<id>.<name>`` next to it), then the
row is deleted, then the renamed directory is removed. A row delete that fails puts the directory
back; a crash in between leaves the renamed directory, which the next start finds
(:func:`interrupted`): the deletion of its row, when still there, is finished, and the directory
removed. Only names with this prefix are ever touched, whatever else shares the directory.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: What the name of a VM directory set aside for deletion starts with.
PREFIX = ".deleting."


@dataclass(frozen=True)
class SetAside:
    """A VM directory renamed aside while the VM's row is deleted."""

    vm_id: int
    name: str
    path: Path

    def remove(self) -> None:
        """Remove the directory for good (the row is gone)."""
        shutil.rmtree(self.path, ignore_errors=True)


def set_aside(vm_id: int, name: str, runtime_dir: Path) -> SetAside:
    """Rename ``runtime_dir`` of VM ``vm_id`` aside (nothing to rename is fine)."""
    aside = SetAside(vm_id, name, runtime_dir.with_name(f"{PREFIX}{vm_id}.{name}"))
    aside.remove()  # left by an earlier attempt
    try:
        runtime_dir.rename(aside.path)
    except FileNotFoundError:
        pass
    return aside


def put_back(aside: SetAside, runtime_dir: Path) -> None:
    """Give the directory its name again (the row could not be deleted)."""
    try:
        aside.path.rename(runtime_dir)
    except FileNotFoundError:
        pass


def interrupted(parents: Iterable[Path]) -> Iterator[SetAside]:
    """The directories set aside in ``parents`` whose deletion a stopped daemon did not finish."""
    for parent in set(parents):
        try:
            entries = list(parent.iterdir())
        except FileNotFoundError:
            continue
        for entry in entries:
            vm_id, _, name = entry.name.removeprefix(PREFIX).partition(".")
            if entry.name.startswith(PREFIX) and vm_id.isascii() and vm_id.isdigit() and name:
                yield SetAside(int(vm_id), name, entry)
