"""A restart re-adopts running VMs without the guest image (issue 12, finding 8; ADR 0030).

The image is resolved at the first boot that needs one. The daemon restarts without
``VOLANT_KERNEL`` / ``VOLANT_INITRAMFS`` while apt knows no package at all, as after an
``apt update`` on a host gone offline: ``APT_CONFIG``, apt's own setting, points the image
builder's ``apt-cache`` at empty package lists, so building the image fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from volant_core.guest import file_layer
from volant_core.testing.daemon import RunningDaemon

#: The directory name of an image built before (as the builder names them: 24 letters and digits).
PREVIOUS_BUILD = "0123456789abcdef01234567"


@pytest.fixture
def apt_knows_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """apt (run by the image builder in this process) reads empty package lists: no package exists."""
    root = tmp_path / "apt"
    for directory in ("lists/partial", "cache/archives/partial", "sources.list.d"):
        (root / directory).mkdir(parents=True)
    config = root / "apt.conf"
    config.write_text(
        f'Dir::State::lists "{root}/lists";\nDir::Cache "{root}/cache";\n'
        f'Dir::Etc::sourcelist "/dev/null";\nDir::Etc::sourceparts "{root}/sources.list.d";\n'
        'Dir::State::status "/dev/null";\n'
    )
    monkeypatch.setenv("APT_CONFIG", str(config))


def create(api: RunningDaemon, name: str) -> Any:
    """Create VM ``name`` of ``hello-host``; the reply."""
    return api.request("POST", "/api/v1/vms", {"name": name, "plugin": "hello-host"})


def test_a_restart_adopts_running_vms_when_the_image_cannot_be_built(
    host_api: RunningDaemon, apt_knows_nothing: None
) -> None:
    assert create(host_api, "kept").status == 201
    before = host_api.wait_for_status("kept", {"running"})
    host_api.restart(kernel=None, initramfs=None)  # the next boot needs the built image
    after = host_api.wait_for_status("kept", {"running", "crashed"})
    assert (after["status"], after["pid"]) == ("running", before["pid"])  # adopted, not booted again
    refused = create(host_api, "new")
    assert refused.status == 500
    message = refused.json()["error"]["message"]
    assert "no guest image: building it" in message and "none was built before" in message
    assert "set VOLANT_KERNEL and VOLANT_INITRAMFS" in message
    assert host_api.request("GET", "/api/v1/vms/new").status == 404  # nothing left behind
    assert host_api.wait_for_status("kept", {"running"})["pid"] == before["pid"]


def test_a_failed_rebuild_boots_the_image_built_before(
    host_api: RunningDaemon, apt_knows_nothing: None
) -> None:
    previous = host_api.daemon.settings.cache_dir / "guest" / PREVIOUS_BUILD
    previous.mkdir(parents=True)
    (previous / "vmlinux").write_bytes(b"")  # the test backend boots no kernel
    base = file_layer({"/etc/built-before": b"yes\n"})
    (previous / "initramfs.cpio.gz").write_bytes(base)
    host_api.restart(kernel=None, initramfs=None)
    assert create(host_api, "web").status == 201
    vm = host_api.wait_for_status("web", {"running", "crashed"})
    assert vm["status"] == "running"
    composed = Path(vm["runtime_dir"]) / "initramfs.img"
    assert composed.read_bytes().startswith(base)  # the VM booted the image built before
