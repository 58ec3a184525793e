"""MkDocs hooks of the documentation site (``mkdocs.yml``: ``hooks``); they import nothing of Volant.

A nav entry that names a folder (``- Decisions (ADRs): adr/``) becomes a section listing every
Markdown page of that folder in file-name order, so a new ADR appears in the site without anyone
editing ``mkdocs.yml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def expand_folders(nav: list[Any], docs_dir: Path) -> list[Any]:
    """``nav`` with every entry that names a folder (a path ending in ``/``) replaced by its pages."""
    expanded: list[Any] = []
    for entry in nav:
        if isinstance(entry, str):
            expanded.append(_pages_of(entry, docs_dir) if entry.endswith("/") else entry)
        elif isinstance(entry, dict):
            expanded.append({title: _expand_value(value, docs_dir) for title, value in entry.items()})
        else:
            expanded.append(entry)
    return expanded


def _expand_value(value: Any, docs_dir: Path) -> Any:
    """A nav entry's value: a folder expanded, a list expanded entry by entry, a page as it is."""
    if isinstance(value, list):
        return expand_folders(value, docs_dir)
    if isinstance(value, str) and value.endswith("/"):
        return _pages_of(value, docs_dir)
    return value


def _pages_of(folder: str, docs_dir: Path) -> list[str]:
    """The Markdown pages directly in ``folder`` (relative to ``docs_dir``), sorted by file name.

    Raises ValueError when the folder holds none: a nav entry must lead somewhere.
    """
    pages = sorted(path.relative_to(docs_dir).as_posix() for path in (docs_dir / folder).glob("*.md"))
    if not pages:
        raise ValueError(f"nav entry {folder!r}: no Markdown pages in {docs_dir / folder}")
    return pages


def on_config(config: Any) -> Any:
    """Expand folder entries of the configured nav (MkDocs calls this once, before collecting pages)."""
    if config["nav"] is not None:
        config["nav"] = expand_folders(config["nav"], Path(config["docs_dir"]))
    return config
