"""The rules of the guest kernel command line: keys Volant reserves, what one argument may hold,
and how long the whole line may be.

Volant sets ``volant.name``, ``volant.runtime``, ``volant.manifest``, ``volant.rootfs``,
``volant.ip``, ``volant.gw``, ``volant.dns`` and ``volant.hostname`` itself; kestrel believes
them, so a user's ``kernel_cmdline`` may not set them (``volant.console`` is a user knob and
stays allowed). Every argument is printable ASCII: the guest kernel and kestrel split the line
on whitespace, and a control character could end or forge a line of the console. The guest
kernel keeps :data:`MAX_CMDLINE_BYTES` bytes (the terminating NUL included) and silently cuts
the rest.

The checks raise ``ValueError`` (so a pydantic field validator can use them) or, where a
whole command line is composed, :class:`~volant_core.errors.ValidationError`.
"""

from __future__ import annotations

from collections.abc import Sequence

from volant_core.agent.constants import (
    CMDLINE_DNS_KEY,
    CMDLINE_GATEWAY_KEY,
    CMDLINE_HOSTNAME_KEY,
    CMDLINE_IP_KEY,
    CMDLINE_MANIFEST_KEY,
    CMDLINE_NAME_KEY,
    CMDLINE_ROOTFS_KEY,
    CMDLINE_RUNTIME_KEY,
)
from volant_core.errors import ValidationError

#: Keys only Volant sets on the guest kernel command line.
RESERVED_KEYS = frozenset(
    {
        CMDLINE_NAME_KEY,
        CMDLINE_RUNTIME_KEY,
        CMDLINE_MANIFEST_KEY,
        CMDLINE_ROOTFS_KEY,
        CMDLINE_IP_KEY,
        CMDLINE_GATEWAY_KEY,
        CMDLINE_DNS_KEY,
        CMDLINE_HOSTNAME_KEY,
    }
)
#: Size of the guest kernel's command line buffer (x86 ``COMMAND_LINE_SIZE``), NUL included.
MAX_CMDLINE_BYTES = 2048


def _printable(text: str) -> bool:
    return text.isascii() and text.isprintable()


def check_user_cmdline(value: str) -> str:
    """Return a user's extra kernel arguments (``kernel_cmdline``) if they are printable ASCII
    separated by spaces and set no key of :data:`RESERVED_KEYS`; ValueError saying why not.
    """
    if not _printable(value):
        raise ValueError(
            "must be printable ASCII arguments separated by spaces (no control characters, tabs, "
            "newlines or non-ASCII characters)"
        )
    for argument in value.split():
        key = argument.lstrip('"').partition("=")[0]
        if key in RESERVED_KEYS:
            raise ValueError(
                f"{key} is set by Volant itself; remove it (reserved: {', '.join(sorted(RESERVED_KEYS))})"
            )
    return value


def check_argument(argument: str) -> str:
    """Return one kernel argument a plugin contributes (e.g. ``volant.ip=10.0.0.2/24``) if it is
    non-empty printable ASCII without whitespace; ValueError saying why not.
    """
    if not argument or not _printable(argument) or " " in argument:
        raise ValueError(f"kernel argument {argument!r} must be non-empty printable ASCII without whitespace")
    return argument


def check_length(arguments: Sequence[str]) -> None:
    """Refuse a composed command line the guest kernel would cut (ValidationError naming
    ``kernel_cmdline``, the part a user can shorten).
    """
    size = len(" ".join(arguments).encode())
    if size >= MAX_CMDLINE_BYTES:
        raise ValidationError(
            f"kernel_cmdline: the guest's kernel command line would be {size} bytes, but the guest kernel "
            f"keeps {MAX_CMDLINE_BYTES - 1}; shorten kernel_cmdline",
            field="kernel_cmdline",
        )
