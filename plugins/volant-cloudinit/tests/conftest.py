"""Fixtures of the cloudinit plugin's tests: the documents the seeds carry (the same in the pure tests
and the guest boots) and a way to read a seed image back with Debian's tools.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

#: A cloud-config using every part of kestrel's subset that the guest boot checks: the host name, a
#: file written (base64, with a mode), a bootcmd and a runcmd whose output files the workload reads.
CLOUD_CONFIG = """#cloud-config
hostname: seeded-host
write_files:
  - path: /etc/volant-seeded.txt
    encoding: b64
    content: d3JpdHRlbiBieSB3cml0ZV9maWxlcwo=
    permissions: '0640'
bootcmd:
  - echo bootcmd ran > /run/bootcmd.out
runcmd:
  - [sh, -c, "cat /etc/volant-seeded.txt > /run/runcmd.out"]
  - echo "runcmd saw host $(hostname)" >> /run/runcmd.out
"""
#: A network-config (version 2) for eth0.
NETWORK_CONFIG = """version: 2
ethernets:
  eth0:
    addresses: [10.77.0.5/24]
    gateway4: 10.77.0.1
    nameservers:
      addresses: [10.77.0.1]
"""
META_DATA = "instance-id: given-instance\nlocal-hostname: from-meta-data\n"


@pytest.fixture(scope="session")
def cloud_config() -> str:
    """:data:`CLOUD_CONFIG`."""
    return CLOUD_CONFIG


@pytest.fixture(scope="session")
def network_config() -> str:
    """:data:`NETWORK_CONFIG`."""
    return NETWORK_CONFIG


@pytest.fixture(scope="session")
def meta_data() -> str:
    """:data:`META_DATA`."""
    return META_DATA


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(
            f"{tool} is not installed (apt-get install dosfstools mtools xorriso; make bootstrap does)"
        )


@pytest.fixture
def read_seed(tmp_path: Path) -> Callable[[Path], dict[str, bytes]]:
    """Reads every file of a seed image back (``mcopy`` for FAT, ``xorriso -osirrox`` for ISO 9660)."""

    def read(image: Path) -> dict[str, bytes]:
        out = Path(tempfile.mkdtemp(prefix=f"read-{image.name}-", dir=tmp_path))
        if image.suffix == ".iso":
            _need("xorriso")
            subprocess.run(
                ["xorriso", "-osirrox", "on", "-indev", str(image), "-extract", "/", str(out)],
                check=True,
                capture_output=True,
            )
        else:
            _need("mcopy")
            subprocess.run(
                ["mcopy", "-s", "-i", str(image), "::/*", str(out)], check=True, capture_output=True
            )
        return {path.name: path.read_bytes() for path in out.iterdir()}

    return read
