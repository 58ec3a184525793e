"""Names of the host network devices network-mode plugins create for a VM (shared through
:mod:`volant_core.sdk`, so that two plugins never name one VM's devices differently).
"""

from __future__ import annotations

import hashlib

#: Longest network interface name Linux accepts (``IFNAMSIZ`` is 16 with the final NUL).
IFNAME_MAX = 15
#: Prefix of the tap devices Volant creates.
TAP_PREFIX = "vt"


def tap_name(vm_name: str) -> str:
    """The host tap device of ``vm_name``: ``vt`` and 13 hex digits of a hash of the whole name.

    Always :data:`IFNAME_MAX` characters, and distinct names give distinct taps
    (52 bits of SHA-256), unlike a shortened or sanitised name (``web-1`` and
    ``web1`` must not share ``vttap-web1``).
    """
    digest = hashlib.sha256(vm_name.encode()).hexdigest()
    return TAP_PREFIX + digest[: IFNAME_MAX - len(TAP_PREFIX)]
