"""The guest kernel: the uncompressed vmlinux (PVH entry point) and the modules the guest loads."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Iterable
from pathlib import Path

#: Modules the guest loads at boot, with their dependencies: virtio transports and devices, the
#: overlay and read-only file systems of a runtime's root file system (ext4 is built in), the file
#: systems of seed disks, entropy, and the ACPI power button (with evdev to read it).
GUEST_MODULES: tuple[str, ...] = (
    "virtio_pci",
    "virtio_mmio",
    "virtio_console",
    "virtio_rng",
    "virtio_blk",
    "virtio_net",
    "vmw_vsock_virtio_transport",
    "overlay",
    "squashfs",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "isofs",
    "button",
    "evdev",
)

_LZ4_LEGACY_MAGIC = b"\x02\x21\x4c\x18"
_ELF_MAGIC = b"\x7fELF"


def extract_vmlinux(bzimage: Path, destination: Path) -> Path:
    """Write the uncompressed kernel inside ``bzimage`` (an LZ4 payload) to ``destination``.

    The payload is located with the boot protocol header (``setup_sects``, ``payload_offset``,
    ``payload_length``) and inflated with the ``lz4`` tool.
    """
    image = bzimage.read_bytes()
    setup_sects = image[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = image[start : start + payload_length]
    if payload[:4] != _LZ4_LEGACY_MAGIC:
        raise RuntimeError(f"{bzimage}: payload is not LZ4 (magic {payload[:4].hex()})")
    tmp = destination.with_suffix(".tmp")
    with tmp.open("wb") as out:
        done = subprocess.run(["lz4", "-dc"], input=payload, stdout=out, stderr=subprocess.PIPE, check=False)
    with tmp.open("rb") as check:
        is_elf = check.read(4) == _ELF_MAGIC
    if not is_elf:
        raise RuntimeError(f"lz4 -dc gave no ELF kernel ({done.returncode}): {done.stderr.decode().strip()}")
    tmp.replace(destination)
    return destination


def _modinfo_depends(module: Path) -> list[str]:
    """The ``depends=`` list in the ``.modinfo`` section of an ELF64 kernel module."""
    data = module.read_bytes()
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_offset = sections[shstrndx][4]
    for name_index, _type, _flags, _addr, offset, size in sections:
        name = data[names_offset + name_index : data.index(b"\0", names_offset + name_index)]
        if name == b".modinfo":
            for field in data[offset : offset + size].split(b"\0"):
                if field.startswith(b"depends="):
                    return [d for d in field[8:].decode().split(",") if d]
            return []
    raise RuntimeError(f"{module}: no .modinfo section")


def _canonical(name: str) -> str:
    return name.replace("-", "_")


def module_load_order(modules_dir: Path, wanted: Iterable[str]) -> list[Path]:
    """``wanted`` modules found under ``modules_dir`` plus their dependencies, dependencies first.

    Modules built into the kernel (listed in ``modules.builtin``) are skipped.
    """
    index = {_canonical(p.name.removesuffix(".ko")): p for p in modules_dir.rglob("*.ko")}
    builtin_file = modules_dir / "modules.builtin"
    builtin = {_canonical(Path(line).name.removesuffix(".ko")) for line in builtin_file.read_text().split()}
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        name = _canonical(name)
        if name in seen or name in builtin:
            return
        seen.add(name)
        if name not in index:
            raise RuntimeError(f"kernel module {name} not found under {modules_dir}")
        for dependency in _modinfo_depends(index[name]):
            visit(dependency)
        order.append(index[name])

    for module in wanted:
        visit(module)
    return order
