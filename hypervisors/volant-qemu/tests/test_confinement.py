"""QEMU runs confined: as an unprivileged identity of its VM's own, under its seccomp sandbox, in a
cgroup of its own whose limits come from the VM's resources (docs/security.md, "VMM confinement").

The checks read what the kernel reports about the running QEMU (``/proc/PID/status``,
``/proc/PID/cgroup`` and the group's limit files), not what Volant meant to set.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from volant_qemu.confine import close_all, prepare_handover
from volant_qemu.consolelog import rotate_if_over
from volant_qemu.instance import QemuInstance
from volant_qemu.launcher import QemuLauncher
from volant_qemu.paths import VmPaths

from volant_core.errors import LaunchError
from volant_core.launch import BackingImage, DiskRole, DiskSpec, LaunchSpec
from volant_core.settings import DEFAULT_VMM_ID_RANGE, parse_id_range
from volant_core.testing.confinement import (
    UNTOUCHED,
    VMM_USER,
    cgroup_exists,
    intrude_as,
    plant_links,
    process_limits,
    process_status,
)
from volant_core.vmm_confinement import VmmConfinement

Reap = Callable[[QemuInstance], QemuInstance]
OVERHEAD_MB = 300


@pytest.mark.e2e
@pytest.mark.usefixtures("qemu_binary", "tcg")
def test_qemu_runs_unprivileged_sandboxed_and_limited(
    volant_cgroup_parent: str, guest_spec: LaunchSpec, volant_reap: Reap, volant_vmm_user: pwd.struct_passwd
) -> None:
    spec = LaunchSpec(**{**guest_spec.__dict__, "name": "confined", "cpu_cores": 2})
    launcher = QemuLauncher(confinement=VmmConfinement(VMM_USER, volant_cgroup_parent, OVERHEAD_MB))
    instance = volant_reap(launcher.launch(spec))

    status = process_status(instance.pid)
    own_id = str(
        parse_id_range(DEFAULT_VMM_ID_RANGE)[0] + spec.vsock_cid
    )  # the VM's own ids, not volant-vmm's
    assert status["Uid"].split() == [own_id] * 4
    assert status["Gid"].split() == [own_id] * 4
    assert str(volant_vmm_user.pw_gid) in status["Groups"].split()  # to pass the state directory
    assert status["CapEff"] == "0000000000000000"
    assert status["Seccomp"] == "2"
    limits = process_limits(instance.pid)
    assert limits["cpu"] == "200000 100000" and limits["weight"] == "2"
    assert limits["memory"] == str((256 + OVERHEAD_MB) * 1024 * 1024)
    assert all(volant_cgroup_parent in limits[f"{c}-group"] for c in ("cpu", "memory"))
    vm_dir = spec.vm_dir.stat()  # root's: QEMU adds its sockets, cannot replace the daemon's files
    assert (vm_dir.st_uid, vm_dir.st_gid, oct(vm_dir.st_mode & 0o7777)) == (0, int(own_id), "0o1770")
    with instance.qmp() as qmp:  # moved into its group, then let run
        assert qmp.execute("query-status")["status"] == "running"
    assert instance.agent_channel is not None
    assert instance.agent_channel.connect(60).close() is None

    other_spec = {"name": "other", "vm_dir": spec.vm_dir.with_name("other"), "vsock_cid": 4}
    other = volant_reap(launcher.launch(LaunchSpec(**{**spec.__dict__, **other_spec})))  # killed once checked
    other_status = process_status(other.pid)
    assert other_status["Uid"].split()[0] not in {"0", str(volant_vmm_user.pw_uid), status["Uid"].split()[0]}
    assert other_status["Gid"].split()[0] not in {"0", str(volant_vmm_user.pw_gid), status["Gid"].split()[0]}
    other_dir = other.paths.vm_dir.stat()  # its own group only
    assert (other_dir.st_uid, other_dir.st_gid) == (0, int(other_status["Gid"].split()[0]))
    own, others = instance.paths, other.paths
    as_first = intrude_as(status, own.vm_dir, own.qmp_socket)  # a VMM reaches its own VM's directory...
    as_first_on_other = intrude_as(status, others.vm_dir, others.qmp_socket)  # ...and no other VM's
    assert (as_first, as_first_on_other) == ("ok ok", "PermissionError PermissionError")
    other.kill()

    instance.stop(10)
    assert not any(Path(limits[f"{c}-group"]).exists() for c in ("cpu", "memory"))


@pytest.mark.usefixtures("qemu_binary", "tcg")
def test_a_missing_vmm_user_refuses_the_launch_with_the_fix(
    guest_spec: LaunchSpec, volant_cgroup_parent: str
) -> None:
    launcher = QemuLauncher(
        confinement=VmmConfinement("volant-no-such-user", volant_cgroup_parent, OVERHEAD_MB)
    )
    with pytest.raises(LaunchError, match=r"VOLANT_VMM_USER.*volar setup"):
        launcher.launch(guest_spec)
    assert not (guest_spec.vm_dir / "qemu.pid").exists()
    assert not cgroup_exists(volant_cgroup_parent)


@pytest.mark.parametrize(
    ("id_range", "refusal"),
    [
        (
            (65_531, 65_533),
            r"VOLANT_VMM_ID_RANGE: .*vsock CID 3 would run as id 65534, past the range 65531-65533",
        ),
        ((65_531, 65_540), r"VOLANT_VMM_ID_RANGE: id 65534, a VMM's own, is the user nobody's"),
    ],
)
@pytest.mark.usefixtures("qemu_binary", "tcg", "volant_vmm_user")
def test_a_vm_id_past_the_range_or_of_a_host_account_refuses_the_launch(
    guest_spec: LaunchSpec, volant_cgroup_parent: str, id_range: tuple[int, int], refusal: str
) -> None:
    """A VM's own id (the range's first plus its vsock CID, 3) must lie in the range and belong to
    no user or group of the host (65534 is ``nobody``'s): the VMM would get what that account owns."""
    confinement = VmmConfinement(VMM_USER, volant_cgroup_parent, OVERHEAD_MB, id_range=id_range)
    with pytest.raises(LaunchError, match=refusal):
        QemuLauncher(confinement=confinement).launch(guest_spec)
    assert not guest_spec.vm_dir.exists()
    assert not cgroup_exists(volant_cgroup_parent)


def test_the_daemon_never_writes_through_a_link_a_vmm_left(
    tmp_path: Path, vm_dir: Path, volant_vmm_user: pwd.struct_passwd, make_spec: Callable[..., LaunchSpec]
) -> None:
    """A confined QEMU may add entries to its VM's directory: links it left under the names the daemon
    writes (the spawn record's and the rotated log's temporary files, the ``boot`` directory) are
    replaced, and the files they point to stay as they were."""
    outside = tmp_path / "outside"
    victim = plant_links(vm_dir, outside, ("qemu.spawn.partial", "console.log.1.partial"), ("boot",))
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"kernel\n")
    identity = VmmConfinement(VMM_USER, "off", 0).identity(3)
    assert identity is not None

    handover = prepare_handover(make_spec(vm_dir, kernel), identity, None)
    VmPaths(vm_dir).record_spawn(123, "456")
    (vm_dir / "console.log").write_bytes(b"x" * 8192)
    assert rotate_if_over(vm_dir / "console.log", 4096)

    assert victim.read_text() == UNTOUCHED and sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert handover.kernel == vm_dir / "boot" / "vmlinux" and handover.kernel.read_bytes() == b"kernel\n"
    assert not (vm_dir / "boot").is_symlink()
    assert VmPaths(vm_dir).spawned() == (123, "456")


def test_a_confined_qemu_writes_its_overlay_and_gets_the_backing_image_as_a_descriptor(
    tmp_path: Path, vm_dir: Path, volant_vmm_user: pwd.struct_passwd, make_spec: Callable[..., LaunchSpec]
) -> None:
    """A VM's qcow2 overlay (ADR 0037) is its VMM's to write, in a directory the VMM cannot add
    to or rename in; the backing image in the daemon's cache (0700) is opened by the daemon, read-only."""
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"kernel\n")
    base = tmp_path / "cache" / "base.raw"
    base.parent.mkdir(mode=0o700)
    base.write_bytes(b"base")
    overlay = vm_dir / "root" / "overlay.qcow2"
    overlay.parent.mkdir(parents=True)
    overlay.write_bytes(b"overlay")
    disk = DiskSpec(overlay, format="qcow2", role=DiskRole.ROOTFS, backing=BackingImage(base, "raw"))
    identity = VmmConfinement(VMM_USER, "off", 0).identity(3)
    assert identity is not None

    handover = prepare_handover(make_spec(vm_dir, kernel, disks=(disk,)), identity, None)
    try:
        assert handover.disk_fds == (None,)  # QEMU opens the overlay in its VM's directory itself
        (backing_fd,) = handover.backing_fds
        assert backing_fd is not None and os.path.samestat(os.fstat(backing_fd), base.stat())
        assert fcntl.fcntl(backing_fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
    finally:
        close_all(handover.descriptors)
    found, directory = overlay.stat(), overlay.parent.stat()
    assert (found.st_uid, found.st_gid, stat.S_IMODE(found.st_mode)) == (0, identity.gid, 0o660)
    assert (directory.st_uid, directory.st_gid, stat.S_IMODE(directory.st_mode)) == (0, identity.gid, 0o710)
