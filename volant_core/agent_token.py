"""The per-VM agent token: what kestrel's TCP listener asks of every request.

A guest on a bridge can reach every other guest's TCP port 8080; the token keeps it from driving
their agents (see ``docs/adr/0022-agent-isolation-and-vsock.md``). The host keeps one random key,
``<state_dir>/agent-token.key`` (mode 0600, made on first use); a VM's token is an HMAC of its
name under that key. So a token survives a daemon restart without being stored anywhere, differs
between VMs, and knowing one's own token says nothing about another's. The token reaches the guest
in an initramfs layer (:data:`~volant_core.agent.constants.AGENT_TOKEN_FILE`), never on the
kernel command line (which the host's ``ps`` and the guest's console log show), and the API never
shows it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

#: File under the daemon's state directory holding the host key (32 random bytes, mode 0600).
KEY_FILE = "agent-token.key"
_KEY_BYTES = 32
#: Separates the token's purpose from other uses of the same key (none so far).
_CONTEXT = b"volant agent token v1\0"


def host_key(state_dir: Path) -> bytes:
    """The host key under ``state_dir``, created (0600, atomically) when there is none yet.

    Raises :class:`ValueError` when the file exists but is not a key (another length): a key
    replaced by mistake must not silently change every VM's token.
    """
    path = state_dir / KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = _create_key(path)
    if len(key) != _KEY_BYTES:
        raise ValueError(f"{path} holds {len(key)} bytes, not a {_KEY_BYTES}-byte agent token key")
    return key


def _create_key(path: Path) -> bytes:
    """Write a new key to ``path`` unless another process won the race; return the key on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own per attempt: two threads of one daemon may race here too.
    partial = path.with_name(f".{path.name}.{secrets.token_hex(8)}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(_KEY_BYTES))
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(partial, path)  # never replaces a key another process wrote first
    finally:
        partial.unlink(missing_ok=True)
    return path.read_bytes()


def token_for(key: bytes, vm_name: str) -> str:
    """The agent token of the VM called ``vm_name`` under ``key``: 64 hex digits."""
    return hmac.new(key, _CONTEXT + vm_name.encode(), hashlib.sha256).hexdigest()


def vm_token(state_dir: Path, vm_name: str) -> str:
    """The agent token of VM ``vm_name`` of the daemon whose state lies in ``state_dir``."""
    return token_for(host_key(state_dir), vm_name)
