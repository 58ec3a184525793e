"""Choosing between KVM and TCG.

``VOLANT_QEMU_ACCEL`` forces ``kvm`` or ``tcg``; ``auto`` (the default) uses TCG
when ``/dev/kvm`` cannot be opened and otherwise *probes*: an opening
``/dev/kvm`` does not prove that KVM runs this kernel (a PVM host accepts
``KVM_CREATE_VM`` and then hangs or aborts a stock kernel). The probe boots the
very kernel and initramfs to launch with ``-accel kvm`` and waits, bounded, for
the guest to reach userspace on its serial console. The verdict is cached in a
file next to the kernel, keyed by the kernel's hash and the host, so the probe
runs once per host and kernel.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import select
import socket
import subprocess
import threading
import time
from pathlib import Path

from volant_core.errors import LaunchError
from volant_core.launch import LaunchSpec

log = logging.getLogger(__name__)

#: Environment variable choosing the accelerator: ``kvm``, ``tcg`` or ``auto``.
ACCEL_ENV = "VOLANT_QEMU_ACCEL"
ACCEL_CHOICES = ("auto", "kvm", "tcg")
KVM_DEVICE = Path("/dev/kvm")
#: How long the probe boot may take to reach userspace before KVM is declared unusable.
PROBE_TIMEOUT = 15.0
#: Serial console lines that prove the guest reached userspace.
READY_MARKERS = (b"Run /init", b"kestrel: ready")
#: Suffix of the verdict cache file written next to the kernel.
CACHE_SUFFIX = ".volant-qemu-accel.json"

_probe_lock = threading.Lock()


def accel_setting() -> str:
    """The value of ``VOLANT_QEMU_ACCEL`` (``auto`` when unset); LaunchError when it is invalid."""
    value = os.environ.get(ACCEL_ENV, "auto").strip().lower() or "auto"
    if value not in ACCEL_CHOICES:
        raise LaunchError(
            f"{ACCEL_ENV}={value!r} is not valid: use one of {', '.join(ACCEL_CHOICES)}", field=ACCEL_ENV
        )
    return value


def kvm_device_opens(device: Path = KVM_DEVICE) -> bool:
    """Whether ``device`` exists and can be opened read-write (necessary, not sufficient, for KVM)."""
    try:
        os.close(os.open(device, os.O_RDWR | os.O_CLOEXEC))
    except OSError:
        return False
    return True


def choose_accelerator(
    spec: LaunchSpec,
    *,
    binary: str,
    setting: str | None = None,
    kvm_device: Path = KVM_DEVICE,
    probe_timeout: float = PROBE_TIMEOUT,
) -> str:
    """``kvm`` or ``tcg`` for launching ``spec`` with ``binary`` (see the module docstring);
    ``setting`` is the plugin's ``accel`` setting (default: read from ``VOLANT_QEMU_ACCEL``).
    """
    setting = setting or accel_setting()
    if setting != "auto":
        return setting
    if not kvm_device_opens(kvm_device):
        return "tcg"
    with _probe_lock:
        return _cached_verdict(spec, binary, probe_timeout)


def host_key() -> str:
    """Identifies this host and its kernel: a verdict is valid only where it was measured."""
    try:
        machine = Path("/etc/machine-id").read_text().strip()
    except OSError:
        machine = socket.gethostname()
    return f"{machine}/{os.uname().release}"


def cache_path(kernel: Path) -> Path:
    """The verdict cache file for ``kernel``."""
    return kernel.with_name(kernel.name + CACHE_SUFFIX)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cached_verdict(spec: LaunchSpec, binary: str, probe_timeout: float) -> str:
    key = {"kernel_sha256": file_sha256(spec.kernel), "host": host_key()}
    path = cache_path(spec.kernel)
    try:
        cached = json.loads(path.read_text())
        if {k: cached.get(k) for k in key} == key and cached.get("accelerator") in ("kvm", "tcg"):
            return str(cached["accelerator"])
    except (OSError, ValueError, AttributeError):
        pass
    verdict = "kvm" if probe_kvm(spec, binary=binary, timeout=probe_timeout) else "tcg"
    log.info("KVM probe boot of %s: using %s", spec.kernel, verdict)
    _write_atomically(path, json.dumps({**key, "accelerator": verdict, "probed_at": time.time()}))
    return verdict


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        temporary.write_text(text)
        temporary.replace(path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        log.warning("cannot cache the accelerator verdict in %s (%s): the probe will run again", path, exc)


def probe_kvm(spec: LaunchSpec, *, binary: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Boot ``spec``'s kernel and initramfs under KVM; True when it reaches userspace within ``timeout``.

    The probe VM has no devices but its serial console (on stdout) and is
    always killed before this returns.
    """
    argv = [
        binary,
        "-M", "q35",
        "-accel", "kvm",
        "-cpu", "host",
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-no-reboot",
        "-smp", "1",
        "-m", str(spec.memory_mb),
        "-kernel", str(spec.kernel),
        "-serial", "stdio",
        "-append", f"{spec.cmdline} console=ttyS0 loglevel=7".strip(),
    ]  # fmt: skip
    if spec.initramfs is not None:
        argv += ["-initrd", str(spec.initramfs)]
    with subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as probe:
        assert probe.stdout is not None
        try:
            return _console_reaches_userspace(probe.stdout.fileno(), time.monotonic() + timeout)
        finally:
            probe.kill()
            probe.wait()


def _console_reaches_userspace(fd: int, deadline: float) -> bool:
    seen = b""
    keep = max(len(marker) for marker in READY_MARKERS)
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        seen = seen[-keep:] + chunk
        if any(marker in seen for marker in READY_MARKERS):
            return True
    return False
