"""The ``cloudinit`` plugin: the seed builders ``vfat`` and ``iso`` and a host check for their tools."""

from __future__ import annotations

import shutil

from volant_core.sdk import HostCheck, HostCheckResult, SeedBuilderDescriptor, hookimpl

from .images import TOOL_PACKAGES, IsoSeed, VfatSeed


def check_seed_tools() -> HostCheckResult:
    """``mkfs.vfat``, ``mcopy`` and ``xorriso`` are installed."""
    missing = sorted(tool for tool in TOOL_PACKAGES if shutil.which(tool) is None)
    if missing:
        packages = " ".join(sorted({TOOL_PACKAGES[tool] for tool in missing}))
        return HostCheckResult(
            "fail",
            f"cloud-init seeds cannot be built: {', '.join(missing)} missing",
            fix=f"apt-get install {packages}",
        )
    return HostCheckResult("pass", f"seed tools present: {', '.join(sorted(TOOL_PACKAGES))}")


@hookimpl
def volant_seed_builders() -> list[SeedBuilderDescriptor]:
    """Register ``vfat`` (label ``CIDATA``) and ``iso`` (iso9660, label ``cidata``)."""
    return [
        SeedBuilderDescriptor("vfat", VfatSeed, "cloud-init NoCloud seed on a FAT image (label CIDATA)"),
        SeedBuilderDescriptor("iso", IsoSeed, "cloud-init NoCloud seed on an ISO 9660 image (label cidata)"),
    ]


@hookimpl
def volant_host_checks() -> list[HostCheck]:
    """Register the ``cloudinit-seed-tools`` check."""
    return [HostCheck(name="cloudinit-seed-tools", run=check_seed_tools)]
