"""cloud-init documents given as files: volar reads them (the daemon reads no file of the client's)
and sends their text byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def read_document(path: str, hint: str) -> str:
    """The text of a cloud-init document file, byte for byte (UTF-8; line ends kept as they are)."""
    try:
        return Path(path).read_bytes().decode()
    except OSError as err:
        raise click.BadParameter(f"cannot read {path}: {err.strerror}", param_hint=hint) from None
    except UnicodeDecodeError:
        raise click.BadParameter(f"{path} is not UTF-8 text", param_hint=hint) from None


def inline_documents(cloud_init: Any, hint: str) -> Any:
    """``cloud_init`` (a configuration's, as JSON) with every document given as ``path`` replaced by
    its content; anything that is not an object is returned as it is, for the daemon to refuse.
    """
    if not isinstance(cloud_init, dict):
        return cloud_init
    inlined = dict(cloud_init)
    for name, document in cloud_init.items():
        if isinstance(document, dict) and isinstance(document.get("path"), str):
            content = read_document(document["path"], f"{hint} cloud_init.{name}.path")
            inlined[name] = {"inline": True, "content": content}
    return inlined
