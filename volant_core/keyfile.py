"""Reading an API key from a file, for volantd's settings and volar's ``--api-key-file`` alike
(without pydantic: volar imports it on every start).
"""

from __future__ import annotations

from pathlib import Path


def read_key_file(path: Path) -> str:
    """The API key stored in ``path`` (surrounding whitespace stripped); ValueError saying why not."""
    try:
        key = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {path}: {err}") from None
    if not key:
        raise ValueError(f"{path} is empty")
    return key
