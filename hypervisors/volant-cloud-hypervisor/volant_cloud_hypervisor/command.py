"""The Cloud Hypervisor v54 command line: a bare VMM, its API socket, event monitor, log and
system-call filter, and no VM (pure: no I/O).

The VM itself is described once, as the API's ``VmConfig`` (:mod:`volant_cloud_hypervisor.vmconfig`),
and created over the API once the VMM sits in its cgroup: the command line cannot start a VM paused.
Each option here is one argument of comma-separated ``key=value`` pairs, and Cloud Hypervisor has no
escape for a comma inside a value: a VM directory holding one is refused, naming the field.
"""

from __future__ import annotations

from volant_cloud_hypervisor.paths import VmPaths
from volant_core.errors import LaunchError

#: ``--seccomp`` value: Cloud Hypervisor's own system-call filter, on.
SECCOMP = "true"


def build_command(paths: VmPaths, *, binary: str) -> list[str]:
    """The argv that starts the Cloud Hypervisor ``binary`` with no VM, serving its API in ``paths``.

    Raises :class:`LaunchError` (naming ``vm_dir``) when a path holds a comma or a socket path is
    too long for a UNIX socket.
    """
    paths.check_socket_lengths()
    return [
        binary,
        "--api-socket", api_socket_argument(paths),
        "--event-monitor", f"path={_value(paths.event_monitor, 'vm_dir')}",
        "--log-file", str(paths.vmm_log),
        "--seccomp", SECCOMP,
    ]  # fmt: skip


def api_socket_argument(paths: VmPaths) -> str:
    """The value of ``--api-socket`` for a VM; :meth:`CloudHypervisorLauncher.adopt` looks for it."""
    return f"path={_value(paths.api_socket, 'vm_dir')}"


def _value(value: object, field: str) -> str:
    """``value`` as text for a ``key=value`` list; refused when it holds a comma (no escape exists)."""
    text = str(value)
    if "," in text:
        raise LaunchError(
            f"{field}: {text!r} contains a comma, which Cloud Hypervisor's option syntax cannot carry; "
            "rename it",
            field=field,
        )
    return text
