"""The two seed images, made with Debian's tools: vfat (label ``CIDATA``; ``mkfs.vfat`` + ``mcopy``,
packages dosfstools and mtools) and iso9660 (label ``cidata``, Rock Ridge and Joliet names;
``xorriso``).

Safety on the host: the image is written to a fixed name inside the directory the core gives (the
VM's own seed directory) and the files go into it under the fixed NoCloud names; nothing in the
documents names a host path, and no tool is asked to follow one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from volant_core.sdk import CloudInit, DiskSpec, LaunchError, VMView

from .documents import seed_files

#: Label of a vfat seed (FAT labels are upper case), of an iso9660 seed.
VFAT_LABEL, ISO_LABEL = "CIDATA", "cidata"
#: Room a vfat image gets beyond its files' size, and its smallest size, in KiB.
_VFAT_SLACK_KIB, _VFAT_MIN_KIB = 512, 1024
_TOOL_TIMEOUT_S = 60
#: The Debian package holding each tool.
TOOL_PACKAGES = {"mkfs.vfat": "dosfstools", "mcopy": "mtools", "xorriso": "xorriso"}


def run_tool(argv: Sequence[str], vm: VMView) -> None:
    """Run one of :data:`TOOL_PACKAGES`; LaunchError naming the tool, its output and the fix."""
    tool = argv[0]
    if shutil.which(tool) is None:
        raise LaunchError(
            f"vm {vm.name}: building its cloud-init seed needs {tool}; "
            f"install it: apt-get install {TOOL_PACKAGES[tool]}"
        )
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "LC_ALL": "C"}
    done = subprocess.run(
        list(argv), capture_output=True, text=True, env=env, timeout=_TOOL_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise LaunchError(
            f"vm {vm.name}: {tool} failed building its cloud-init seed "
            f"(exit {done.returncode}): {(done.stderr or done.stdout).strip()}"
        )


class VfatSeed:
    """The ``vfat`` seed builder: a FAT image labelled ``CIDATA``."""

    def build(self, vm: VMView, cloud_init: CloudInit, directory: Path) -> DiskSpec:
        """Write ``seed.vfat`` into ``directory``."""
        files = seed_files(vm, cloud_init).files
        image = directory / "seed.vfat"
        size_kib = max(
            _VFAT_MIN_KIB, sum(len(data) // 1024 + 4 for data in files.values()) * 2 + _VFAT_SLACK_KIB
        )
        run_tool(["mkfs.vfat", "-n", VFAT_LABEL, "-C", str(image), str(size_kib)], vm)
        with tempfile.TemporaryDirectory(dir=directory) as staging:
            for name, data in files.items():
                source = Path(staging, name)
                source.write_bytes(data)
                run_tool(["mcopy", "-i", str(image), "-o", str(source), f"::/{name}"], vm)
        return DiskSpec(path=image, readonly=True)


class IsoSeed:
    """The ``iso`` seed builder: an ISO 9660 image labelled ``cidata``."""

    def build(self, vm: VMView, cloud_init: CloudInit, directory: Path) -> DiskSpec:
        """Write ``seed.iso`` into ``directory``."""
        files = seed_files(vm, cloud_init).files
        image = directory / "seed.iso"
        with tempfile.TemporaryDirectory(dir=directory) as staging:
            for name, data in files.items():
                Path(staging, name).write_bytes(data)
            run_tool(
                [
                    "xorriso",
                    "-as",
                    "mkisofs",
                    "-quiet",
                    "-output",
                    str(image),
                    "-volid",
                    ISO_LABEL,
                    "-joliet",
                    "-rational-rock",
                    staging,
                ],
                vm,
            )
        return DiskSpec(path=image, readonly=True)
