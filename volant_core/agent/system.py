"""What kestrel does only as PID 1: mounts, kernel modules, loopback, power button, power off
(the network: :mod:`.network`)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path

from .console import say

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_FINIT_MODULE = 313  # x86_64
_RB_POWER_OFF = 0x4321FEDC
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_EV_KEY, _KEY_POWER = 0x01, 116
_INPUT_EVENT = struct.Struct("llHHi")

_MOUNTS: tuple[tuple[str, str, str, str], ...] = (
    ("proc", "/proc", "proc", ""),
    ("sysfs", "/sys", "sysfs", ""),
    ("devtmpfs", "/dev", "devtmpfs", "mode=0755"),
    ("devpts", "/dev/pts", "devpts", "gid=5,mode=0620,ptmxmode=0666"),
    ("tmpfs", "/dev/shm", "tmpfs", "mode=1777"),
    ("tmpfs", "/tmp", "tmpfs", "mode=1777"),
    ("tmpfs", "/run", "tmpfs", "mode=0755"),
)


def mount_filesystems() -> None:
    """Mount proc, sysfs, devtmpfs, devpts and the tmpfs directories (already mounted is fine)."""
    for source, target, fstype, options in _MOUNTS:
        os.makedirs(target, exist_ok=True)
        if _libc.mount(source.encode(), target.encode(), fstype.encode(), 0, options.encode() or None) != 0:
            code = ctypes.get_errno()
            if code != errno.EBUSY:
                say(f"kestrel: mount {target} ({fstype}) failed: {os.strerror(code)}")


def load_modules(list_file: Path) -> int:
    """Load the modules listed in ``list_file`` in order with finit_module; return how many loaded."""
    loaded = 0
    for line in list_file.read_text().split():
        fd = os.open(line, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.syscall(_SYS_FINIT_MODULE, fd, b"", 0) == 0:
                loaded += 1
            elif ctypes.get_errno() != errno.EEXIST:
                say(f"kestrel: loading {line} failed: {os.strerror(ctypes.get_errno())}")
        finally:
            os.close(fd)
    return loaded


def loopback_up() -> None:
    """Bring the ``lo`` interface up (workloads listen on 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack_from("16sH", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def power_off() -> None:
    """Flush file systems and power the machine off (does not return on success)."""
    os.sync()
    _libc.reboot(_RB_POWER_OFF)
    say(f"kestrel: power off failed: {os.strerror(ctypes.get_errno())}")


def power_buttons(sysfs: Path = Path("/sys/class/input")) -> list[Path]:
    """The event devices of every input device named "Power Button" (the ACPI button driver)."""
    found = []
    for entry in sorted(sysfs.glob("event*")):
        with contextlib.suppress(OSError):
            if (entry / "device/name").read_text().strip() == "Power Button":
                found.append(Path("/dev/input", entry.name))
    return found


def watch_power_button(device: Path, on_press: Callable[[], None]) -> None:
    """Call ``on_press`` when ``device`` reports KEY_POWER pressed (blocking; run in a thread)."""
    with device.open("rb", buffering=0) as events:
        while record := events.read(_INPUT_EVENT.size):
            _sec, _usec, kind, code, value = _INPUT_EVENT.unpack(record)
            if kind == _EV_KEY and code == _KEY_POWER and value == 1:
                say(f"kestrel: power button pressed ({device})")
                on_press()
