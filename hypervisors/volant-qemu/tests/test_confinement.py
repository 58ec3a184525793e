"""QEMU runs confined: as an unprivileged identity of its VM's own, under its seccomp sandbox, in a
cgroup of its own whose limits come from the VM's resources (docs/security.md, "VMM confinement").

The checks read what the kernel reports about the running QEMU (``/proc/PID/status``,
``/proc/PID/cgroup`` and the group's limit files), not what Volant meant to set.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import socket
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from volant_qemu.confine import close_all, prepare_handover
from volant_qemu.consolelog import rotate_if_over
from volant_qemu.instance import QemuInstance
from volant_qemu.launcher import QemuLauncher
from volant_qemu.paths import VmPaths

from volant_core.cgroups import hierarchies
from volant_core.errors import LaunchError
from volant_core.launch import BackingImage, DiskRole, DiskSpec, LaunchSpec
from volant_core.settings import DEFAULT_VMM_ID_RANGE, parse_id_range
from volant_core.vmm_confinement import VmmConfinement

Reap = Callable[[QemuInstance], QemuInstance]
VMM_USER = "volant-vmm"
OVERHEAD_MB = 300


@pytest.fixture
def vmm_user() -> pwd.struct_passwd:
    """The VMM user scripts/bootstrap.sh (or `volar setup`) creates; skipped when not root."""
    if os.geteuid() != 0:
        pytest.skip(
            f"needs root: only root starts VMMs as another user (this test runs as uid {os.geteuid()})"
        )
    try:
        return pwd.getpwnam(VMM_USER)
    except KeyError:
        pytest.fail(f"user {VMM_USER} is missing: run scripts/bootstrap.sh")


@pytest.fixture
def cgroup_parent() -> Iterator[str]:
    """A parent cgroup of this test's own, removed afterwards (with any group left inside)."""
    parent = f"volant-test-{uuid.uuid4().hex[:8]}"
    yield parent
    for hierarchy in {h.mount for h in hierarchies().values()}:
        directory = hierarchy / parent
        if directory.is_dir():
            for child in directory.iterdir():
                if child.is_dir():
                    child.rmdir()
            directory.rmdir()


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def _limits(pid: int) -> dict[str, str]:
    """The CPU quota (``QUOTA PERIOD``), CPU weight (in vCPUs) and memory limit (bytes) of the
    cgroup(s) ``pid`` is in, and the group of each controller."""
    membership: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else ["unified"]:
            membership[controller] = path
    limits = {}
    for controller, hierarchy in hierarchies().items():
        group = hierarchy.mount / membership["unified" if hierarchy.unified else controller].lstrip("/")
        if controller == "cpu":  # its weight against the host's other processes, in vCPUs
            unit, name = (100, "cpu.weight") if hierarchy.unified else (1024, "cpu.shares")
            limits["weight"] = str(int((group / name).read_text()) // unit)
        if controller == "cpu" and hierarchy.unified:
            limits["cpu"] = (group / "cpu.max").read_text().strip()
        elif controller == "cpu":
            quota = (group / "cpu.cfs_quota_us").read_text().strip()
            limits["cpu"] = f"{quota} {(group / 'cpu.cfs_period_us').read_text().strip()}"
        else:
            name = "memory.max" if hierarchy.unified else "memory.limit_in_bytes"
            limits["memory"] = (group / name).read_text().strip()
        limits[f"{controller}-group"] = str(group)
    return limits


def _intrude_as(status: dict[str, str], paths: VmPaths) -> str:
    """What a child process running with the uid, gid and groups ``status`` (a running VMM's
    ``/proc/PID/status``) shows gets when it lists the directory of the VM of ``paths`` and
    connects to its QMP socket: ``ok`` or the error's name, for each. (A fork rather than an
    interpreter started as that user: the test's interpreter may lie where it cannot reach.)"""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe and exits at once
        outcome = "error"
        try:
            os.setgroups([int(g) for g in status["Groups"].split()])
            os.setgid(int(status["Gid"].split()[0]))
            os.setuid(int(status["Uid"].split()[0]))
            outcomes = []
            for attempt in (
                lambda: os.listdir(paths.vm_dir),
                lambda: socket.socket(socket.AF_UNIX).connect(str(paths.qmp_socket)),
            ):
                try:
                    attempt()
                    outcomes.append("ok")
                except OSError as err:
                    outcomes.append(type(err).__name__)
            outcome = " ".join(outcomes)
        finally:
            os.write(writer, outcome.encode())
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as answer:
        result = answer.read().decode()
    os.waitpid(child, 0)
    return result


@pytest.mark.e2e
@pytest.mark.usefixtures("qemu_binary", "tcg")
def test_qemu_runs_unprivileged_sandboxed_and_limited(
    cgroup_parent: str, guest_spec: LaunchSpec, volant_reap: Reap, vmm_user: pwd.struct_passwd
) -> None:
    spec = LaunchSpec(**{**guest_spec.__dict__, "name": "confined", "cpu_cores": 2})
    launcher = QemuLauncher(confinement=VmmConfinement(VMM_USER, cgroup_parent, OVERHEAD_MB))
    instance = volant_reap(launcher.launch(spec))

    status = _status(instance.pid)
    own_id = str(
        parse_id_range(DEFAULT_VMM_ID_RANGE)[0] + spec.vsock_cid
    )  # the VM's own ids, not volant-vmm's
    assert status["Uid"].split() == [own_id] * 4
    assert status["Gid"].split() == [own_id] * 4
    assert str(vmm_user.pw_gid) in status["Groups"].split()  # to pass the state directory
    assert status["CapEff"] == "0000000000000000"
    assert status["Seccomp"] == "2"
    limits = _limits(instance.pid)
    assert limits["cpu"] == "200000 100000" and limits["weight"] == "2"
    assert limits["memory"] == str((256 + OVERHEAD_MB) * 1024 * 1024)
    assert all(cgroup_parent in limits[f"{c}-group"] for c in ("cpu", "memory"))
    vm_dir = spec.vm_dir.stat()  # root's: QEMU adds its sockets, cannot replace the daemon's files
    assert (vm_dir.st_uid, vm_dir.st_gid, oct(vm_dir.st_mode & 0o7777)) == (0, int(own_id), "0o1770")
    with instance.qmp() as qmp:  # moved into its group, then let run
        assert qmp.execute("query-status")["status"] == "running"
    assert instance.agent_channel is not None
    assert instance.agent_channel.connect(60).close() is None

    other_spec = {"name": "other", "vm_dir": spec.vm_dir.with_name("other"), "vsock_cid": 4}
    other = volant_reap(launcher.launch(LaunchSpec(**{**spec.__dict__, **other_spec})))  # killed once checked
    other_status = _status(other.pid)
    assert other_status["Uid"].split()[0] not in {"0", str(vmm_user.pw_uid), status["Uid"].split()[0]}
    assert other_status["Gid"].split()[0] not in {"0", str(vmm_user.pw_gid), status["Gid"].split()[0]}
    other_dir = other.paths.vm_dir.stat()  # its own group only
    assert (other_dir.st_uid, other_dir.st_gid) == (0, int(other_status["Gid"].split()[0]))
    as_first = _intrude_as(status, instance.paths)  # a VMM reaches its own VM's directory and socket...
    as_first_on_other = _intrude_as(status, other.paths)  # ...and no other VM's
    assert (as_first, as_first_on_other) == ("ok ok", "PermissionError PermissionError")
    other.kill()

    instance.stop(10)
    assert not any(Path(limits[f"{c}-group"]).exists() for c in ("cpu", "memory"))


@pytest.mark.usefixtures("qemu_binary", "tcg")
def test_a_missing_vmm_user_refuses_the_launch_with_the_fix(
    guest_spec: LaunchSpec, cgroup_parent: str
) -> None:
    launcher = QemuLauncher(confinement=VmmConfinement("volant-no-such-user", cgroup_parent, OVERHEAD_MB))
    with pytest.raises(LaunchError, match=r"VOLANT_VMM_USER.*volar setup"):
        launcher.launch(guest_spec)
    assert not (guest_spec.vm_dir / "qemu.pid").exists()
    assert not any((h.mount / cgroup_parent).exists() for h in hierarchies().values())


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
@pytest.mark.usefixtures("qemu_binary", "tcg", "vmm_user")
def test_a_vm_id_past_the_range_or_of_a_host_account_refuses_the_launch(
    guest_spec: LaunchSpec, cgroup_parent: str, id_range: tuple[int, int], refusal: str
) -> None:
    """A VM's own id (the range's first plus its vsock CID, 3) must lie in the range and belong to
    no user or group of the host (65534 is ``nobody``'s): the VMM would get what that account owns."""
    confinement = VmmConfinement(VMM_USER, cgroup_parent, OVERHEAD_MB, id_range=id_range)
    with pytest.raises(LaunchError, match=refusal):
        QemuLauncher(confinement=confinement).launch(guest_spec)
    assert not guest_spec.vm_dir.exists()
    assert not any((h.mount / cgroup_parent).exists() for h in hierarchies().values())


def test_the_daemon_never_writes_through_a_link_a_vmm_left(
    tmp_path: Path, vm_dir: Path, vmm_user: pwd.struct_passwd, make_spec: Callable[..., LaunchSpec]
) -> None:
    """A confined QEMU may add entries to its VM's directory: links it left under the names the daemon
    writes (the spawn record's and the rotated log's temporary files, the ``boot`` directory) are
    replaced, and the files they point to stay as they were."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_text("untouched\n")
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"kernel\n")
    vm_dir.mkdir()
    for name in ("qemu.spawn.partial", "console.log.1.partial"):
        (vm_dir / name).symlink_to(victim)
    (vm_dir / "boot").symlink_to(outside)
    identity = VmmConfinement(VMM_USER, "off", 0).identity(3)
    assert identity is not None

    handover = prepare_handover(make_spec(vm_dir, kernel), identity, None)
    VmPaths(vm_dir).record_spawn(123, "456")
    (vm_dir / "console.log").write_bytes(b"x" * 8192)
    assert rotate_if_over(vm_dir / "console.log", 4096)

    assert victim.read_text() == "untouched\n" and sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert handover.kernel == vm_dir / "boot" / "vmlinux" and handover.kernel.read_bytes() == b"kernel\n"
    assert not (vm_dir / "boot").is_symlink()
    assert VmPaths(vm_dir).spawned() == (123, "456")


def test_a_confined_qemu_writes_its_overlay_and_gets_the_backing_image_as_a_descriptor(
    tmp_path: Path, vm_dir: Path, vmm_user: pwd.struct_passwd, make_spec: Callable[..., LaunchSpec]
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
