"""Launch specs for hypervisor backend tests: a small VM whose kestrel runs an HTTP workload.

A backend's contract tests (:class:`volant_core.testing.contracts.HypervisorContract`) need a
:class:`LaunchSpec` that boots a guest whose kestrel turns healthy. :func:`small_spec` builds the
VM (1 vCPU, 256 MiB) and :func:`manifest_argument` the ``volant.manifest=`` kernel argument that
hands kestrel its runtime manifest, as volantd does for a small manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from volant_core.agent.constants import CMDLINE_MANIFEST_KEY
from volant_core.launch import LaunchSpec
from volant_core.manifest import encode_for_guest, parse_manifest
from volant_core.testing.kestrel import http_server_workload

#: The guest image's Python: a workload inside a booted guest runs it.
GUEST_PYTHON = "/usr/bin/python3.11"
#: The port the guest workload of :func:`guest_http_manifest` serves on.
GUEST_HTTP_PORT = 8000


def manifest_argument(manifest: dict[str, Any]) -> str:
    """The ``volant.manifest=`` kernel argument carrying ``manifest`` (a runtime manifest document)."""
    return f"{CMDLINE_MANIFEST_KEY}={encode_for_guest(parse_manifest(manifest))}"


def guest_http_manifest() -> dict[str, Any]:
    """A runtime manifest whose workload, inside a booted guest, is Python's HTTP server."""
    return http_manifest(
        {
            "type": "http",
            "base_url": f"http://127.0.0.1:{GUEST_HTTP_PORT}",
            "entrypoint": [GUEST_PYTHON, "-m", "http.server", str(GUEST_HTTP_PORT), "--bind", "127.0.0.1"],
        }
    )


def host_http_manifest(workdir: Path) -> dict[str, Any]:
    """A runtime manifest whose workload, run on the host (kestrel in host mode, a backend's
    stand-in), is Python's HTTP server serving ``workdir`` on a free loopback port.
    """
    return http_manifest(http_server_workload(workdir))


def http_manifest(workload: dict[str, Any]) -> dict[str, Any]:
    """A runtime manifest ``pyhttp`` running ``workload`` (an HTTP server), health-checked on ``/``."""
    return {
        "name": "pyhttp",
        "version": "1.0.0",
        "workload": workload,
        "health_check": {"endpoint": "/", "timeout_ms": 5000},
    }


def small_spec(vm_dir: Path, kernel: Path, **overrides: Any) -> LaunchSpec:
    """A launch spec of VM ``test`` in ``vm_dir``: 1 vCPU, 256 MiB, vsock CID 3, ``kernel``, the
    console on ``ttyS0``; ``overrides`` replace any field (``kernel_args``, ``initramfs``...).
    """
    fields: dict[str, Any] = {
        "name": "test",
        "vm_dir": vm_dir,
        "cpu_cores": 1,
        "memory_mb": 256,
        "kernel": kernel,
        "vsock_cid": 3,
        "kernel_args": ("console=ttyS0",),
        **overrides,
    }
    return LaunchSpec(**fields)
