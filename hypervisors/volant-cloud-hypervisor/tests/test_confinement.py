"""Cloud Hypervisor runs confined as QEMU does (docs/security.md, "Cloud Hypervisor backend"; ADR
42): with ids of its VM's own and the VMM user's groups, in a cgroup of its own whose limits come
from the VM's resources, joined before the guest boots; it reaches its VM's directory and no other.

The VMM is the stand-in (a TEST DOUBLE of the binary, which cannot run here), started by the real
launcher with real uids and cgroups (root on this machine). The checks read what the kernel reports
for the running stand-in (``/proc/PID/status``, ``/proc/PID/cgroup``, the groups' limit files), and
the ids and cgroups the stand-in itself found at ``vm.boot`` (``chstandin-boot.json``).
"""

from __future__ import annotations

import dataclasses
import json
import pwd
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chstandin.records import BOOT_REQUESTS, requests_seen, violations
from conftest import reachable_http_workload
from volant_cloud_hypervisor.api import CloudHypervisorApi
from volant_cloud_hypervisor.confine import prepare_files
from volant_cloud_hypervisor.console import CappedLog
from volant_cloud_hypervisor.instance import CloudHypervisorInstance
from volant_cloud_hypervisor.launcher import CloudHypervisorLauncher
from volant_cloud_hypervisor.paths import VmPaths
from volant_cloud_hypervisor.settings import CloudHypervisorSettings

from volant_core.agent_client import AgentClient
from volant_core.errors import LaunchError
from volant_core.launch import BackingImage, DiskSpec, LaunchSpec, NicSpec
from volant_core.settings import DEFAULT_VMM_ID_RANGE, parse_id_range
from volant_core.testing.confinement import (
    UNTOUCHED,
    VMM_USER,
    cgroup_exists,
    cgroup_limits,
    intrude_as,
    plant_links,
    process_limits,
    process_status,
)
from volant_core.testing.specs import http_manifest, manifest_argument, small_spec
from volant_core.vmm_confinement import NO_CGROUP, UNCONFINED, VmmConfinement

Reap = Callable[[CloudHypervisorInstance], CloudHypervisorInstance]
OVERHEAD_MB = 300
BOOT_TIMEOUT = 60.0
FIRST_ID = parse_id_range(DEFAULT_VMM_ID_RANGE)[0]


def _launcher(standin: Path, user: str, cgroup_parent: str) -> CloudHypervisorLauncher:
    settings = CloudHypervisorSettings(binary=str(standin), console_log_max_bytes=4096)
    return CloudHypervisorLauncher(settings, confinement=VmmConfinement(user, cgroup_parent, OVERHEAD_MB))


def _boot_record(vm_dir: Path) -> dict[str, Any]:
    """What the stand-in found about itself when ``vm.boot`` came."""
    record: dict[str, Any] = json.loads((vm_dir / "chstandin-boot.json").read_text())
    return record


@pytest.fixture
def confined_spec(vm_dir: Path, kernel: Path, shared_dir: Path) -> LaunchSpec:
    """A 2-vCPU VM whose guest serves ``shared_dir`` (a directory its ids may read)."""
    manifest = manifest_argument(http_manifest(reachable_http_workload(shared_dir)))
    return small_spec(vm_dir, kernel, name="confined", cpu_cores=2, kernel_args=("console=ttyS0", manifest))


def test_the_vmm_runs_as_its_vms_ids_in_its_cgroup_before_the_guest_boots(
    standin: Path,
    confined_spec: LaunchSpec,
    volant_cgroup_parent: str,
    volant_vmm_user: pwd.struct_passwd,
    volant_reap: Reap,
) -> None:
    launcher = _launcher(standin, VMM_USER, volant_cgroup_parent)
    instance = volant_reap(launcher.launch(confined_spec))

    own_id = str(FIRST_ID + confined_spec.vsock_cid)  # the VM's own ids, not volant-vmm's
    status = process_status(instance.pid)
    assert status["Uid"].split() == [own_id] * 4 and status["Gid"].split() == [own_id] * 4
    assert str(volant_vmm_user.pw_gid) in status["Groups"].split()  # to pass the state directory
    assert status["CapEff"] == "0000000000000000"
    booted = _boot_record(confined_spec.vm_dir)  # what the VMM was when vm.boot came:
    assert booted["pid"] == instance.pid and booted["uid"] == [own_id] * 4
    at_boot = cgroup_limits(booted["cgroup"])  # already in its own group, with the VM's limits
    assert at_boot == process_limits(instance.pid)
    assert at_boot["cpu"] == "200000 100000" and at_boot["weight"] == "2"
    assert at_boot["memory"] == str((256 + OVERHEAD_MB) * 1024 * 1024)
    assert all(f"/{volant_cgroup_parent}/confined." in at_boot[f"{c}-group"] for c in ("cpu", "memory"))
    assert [line for line in requests_seen(confined_spec.vm_dir) if "ping" not in line] == BOOT_REQUESTS
    vm_dir = confined_spec.vm_dir.stat()  # root's: the VMM adds its sockets, cannot replace the daemon's
    assert (vm_dir.st_uid, vm_dir.st_gid, stat.S_IMODE(vm_dir.st_mode)) == (0, int(own_id), 0o1770)
    with CloudHypervisorApi(instance.paths.api_socket) as api:  # the copy of the kernel, not the cache's
        assert api.info()["config"]["payload"]["kernel"] == str(confined_spec.vm_dir / "boot" / "vmlinux")
    client = AgentClient(instance.agent_channel)
    try:  # the guest, run by the confined VMM, is healthy
        assert client.wait_healthy(BOOT_TIMEOUT, alive=instance.alive)["status"] == "ok"
    finally:
        client.close()

    other_spec = dataclasses.replace(
        confined_spec, name="other", vm_dir=confined_spec.vm_dir.with_name("other"), vsock_cid=4
    )
    other = volant_reap(launcher.launch(other_spec))  # killed once checked
    other_status = process_status(other.pid)
    assert other_status["Uid"].split()[0] not in {"0", str(volant_vmm_user.pw_uid), own_id}
    own, others = instance.paths, other.paths
    as_first = intrude_as(status, own.vm_dir, own.api_socket)  # a VMM reaches its own VM's directory...
    as_first_on_other = intrude_as(status, others.vm_dir, others.api_socket)  # ...and no other VM's
    assert (as_first, as_first_on_other) == ("ok ok", "PermissionError PermissionError")
    other.kill()

    assert instance.stop(30) == 0
    assert not any(Path(at_boot[f"{c}-group"]).exists() for c in ("cpu", "memory"))
    assert violations(confined_spec.vm_dir) == ""


def test_a_missing_vmm_user_refuses_the_launch_naming_the_setting(
    standin: Path, confined_spec: LaunchSpec, volant_cgroup_parent: str
) -> None:
    launcher = _launcher(standin, "volant-no-such-user", volant_cgroup_parent)
    with pytest.raises(LaunchError, match=r"VOLANT_VMM_USER.*volar setup"):
        launcher.launch(confined_spec)
    assert not confined_spec.vm_dir.exists() and not cgroup_exists(volant_cgroup_parent)


@pytest.mark.parametrize(
    ("user", "cgroups", "runs_as_root", "in_cgroup"),
    [(UNCONFINED, "parent", True, True), (VMM_USER, NO_CGROUP, False, False)],
    ids=["VOLANT_VMM_USER=root", "VOLANT_VMM_CGROUP=off"],
)
def test_the_opt_outs_drop_only_what_they_name(
    standin: Path,
    confined_spec: LaunchSpec,
    volant_cgroup_parent: str,
    volant_vmm_user: pwd.struct_passwd,
    volant_reap: Reap,
    user: str,
    cgroups: str,
    runs_as_root: bool,
    in_cgroup: bool,
) -> None:
    parent = volant_cgroup_parent if cgroups == "parent" else cgroups
    instance = volant_reap(_launcher(standin, user, parent).launch(confined_spec))
    booted = _boot_record(confined_spec.vm_dir)
    assert (booted["uid"] == ["0"] * 4) is runs_as_root
    assert any(f"/{volant_cgroup_parent}/" in line for line in booted["cgroup"]) is in_cgroup
    instance.kill()


def test_a_read_only_image_from_elsewhere_is_copied_in_where_the_vmm_cannot_replace_it(
    standin: Path,
    confined_spec: LaunchSpec,
    tmp_path: Path,
    volant_cgroup_parent: str,
    volant_vmm_user: pwd.struct_passwd,
    volant_reap: Reap,
) -> None:
    """Cloud Hypervisor opens disks by path: a read-only image in a directory the VMM cannot reach
    (the daemon's 0700 cache) is copied into ``images/``, root's, readable by the VM's group only,
    in a root-owned directory the VMM may pass but not add to."""
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    image = cache / "data.img"
    image.write_bytes(b"data" * 1024)
    spec = dataclasses.replace(confined_spec, disks=(DiskSpec(image, readonly=True),))
    instance = volant_reap(_launcher(standin, VMM_USER, volant_cgroup_parent).launch(spec))
    copy = spec.vm_dir / "images" / "0-data.img"
    with CloudHypervisorApi(instance.paths.api_socket) as api:
        assert [disk["path"] for disk in api.info()["config"]["disks"]] == [str(copy)]
    gid = int(process_status(instance.pid)["Gid"].split()[0])
    found, directory = copy.stat(), copy.parent.stat()
    assert copy.read_bytes() == image.read_bytes()
    assert (found.st_uid, found.st_gid, stat.S_IMODE(found.st_mode)) == (0, gid, 0o640)
    assert (directory.st_uid, directory.st_gid, stat.S_IMODE(directory.st_mode)) == (0, gid, 0o710)
    instance.kill()


@pytest.mark.parametrize(
    ("change", "field", "fix"),
    [
        ({"nics": (NicSpec("vt-x0", "52:54:00:00:00:01"),)}, "nics[0]", "cannot be given a tap"),
        ({"disks": (DiskSpec(Path("/var/tmp/rw.img")),)}, "disks[0]", "writable disk"),
        (
            {
                "disks": (
                    DiskSpec(
                        Path("overlay.qcow2"), format="qcow2", backing=BackingImage(Path("/c/b"), "raw")
                    ),
                )
            },
            "disks[0]",
            "backing image /c/b lies outside",
        ),
    ],
    ids=["tap", "writable-disk-outside", "overlay-backing-outside"],
)
def test_what_a_confined_vmm_cannot_be_given_is_refused_naming_the_field(
    standin: Path,
    confined_spec: LaunchSpec,
    volant_cgroup_parent: str,
    volant_vmm_user: pwd.struct_passwd,
    change: dict[str, Any],
    field: str,
    fix: str,
) -> None:
    if "disks" in change and change["disks"][0].backing is not None:  # the overlay is the VM's own
        overlay = dataclasses.replace(change["disks"][0], path=confined_spec.vm_dir / "root" / "o.qcow2")
        change = {"disks": (overlay,)}
    spec = dataclasses.replace(confined_spec, **change)
    with pytest.raises(LaunchError, match=fix) as caught:
        _launcher(standin, VMM_USER, volant_cgroup_parent).launch(spec)
    assert caught.value.field == field and "VOLANT_VMM_USER=root" in caught.value.message
    assert not spec.vm_dir.exists() and not cgroup_exists(volant_cgroup_parent)


def test_the_daemon_never_writes_through_a_link_a_vmm_left(
    tmp_path: Path, vm_dir: Path, kernel: Path, volant_vmm_user: pwd.struct_passwd
) -> None:
    """A confined VMM may add entries to its VM's directory: links it left under the names the
    daemon writes (the pidfile's temporary, the console log, the ``boot`` and ``images`` directories)
    are replaced or refused, and the files they point to stay as they were."""
    outside = tmp_path / "outside"
    victim = plant_links(vm_dir, outside, ("cloud-hypervisor.pid.partial", "console.log"), ("boot", "images"))
    image = tmp_path / "data.img"
    image.write_bytes(b"data")
    identity = VmmConfinement(VMM_USER, NO_CGROUP, 0).identity(3)
    assert identity is not None
    spec = small_spec(vm_dir, kernel, disks=(DiskSpec(image, readonly=True),))

    files = prepare_files(spec, identity, None)
    VmPaths(vm_dir).record_pid(123, "456")
    with pytest.raises(OSError):  # the relay refuses to append through the link
        CappedLog(vm_dir / "console.log", 4096).append(b"guest output\n")

    assert victim.read_text() == UNTOUCHED and sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert files.kernel == vm_dir / "boot" / "vmlinux" and files.kernel.read_bytes() == kernel.read_bytes()
    assert files.disks == (vm_dir / "images" / "0-data.img",) and files.disks[0].read_bytes() == b"data"
    assert not (vm_dir / "boot").is_symlink() and not (vm_dir / "images").is_symlink()
    assert VmPaths(vm_dir).recorded_pid() == (123, "456")
