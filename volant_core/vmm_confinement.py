"""Who a VMM runs as and what it may use: an identity of its own per VM and a cgroup per VM.

A guest that escapes its VMM gets what the VMM has. So hypervisor plugins start each VM's VMM
with a uid and gid of that VM's own (:meth:`VmmConfinement.identity`: the first id of
``VOLANT_VMM_ID_RANGE`` plus the VM's vsock CID, as Firecracker's jailer gives each microVM its
own), with the groups of ``VOLANT_VMM_USER`` (default ``volant-vmm``, created by ``volar setup``:
its own group, shared by every VMM to pass the state directory, and ``kvm`` when ``/dev/kvm``
needs it) as supplementary groups, in a cgroup of its own whose CPU and memory limits come from
the VM's resources (:mod:`volant_core.cgroups`). The VMM reaches its VM's directory and nothing
else of the state directory, and no other VM's (:func:`hand_over`): the files it needs there are
shared with its VM's group, and files elsewhere (kernel, read-only images, taps) are copied in or
opened by the daemon and passed as descriptors, by the hypervisor plugin.

``VOLANT_VMM_USER=root`` runs VMMs unconfined (a warning is logged at each launch); a daemon that
is not root runs its VMMs as itself. ``VOLANT_VMM_CGROUP=off`` starts them without limits.
"""

from __future__ import annotations

import grp
import hashlib
import logging
import os
import pwd
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from volant_core.cgroups import CGROUP_SETTING, VmCgroup
from volant_core.context import PluginContext
from volant_core.descriptors import HostCheckResult
from volant_core.errors import LaunchError
from volant_core.settings import DEFAULT_VMM_ID_RANGE, Settings, load_settings, parse_id_range
from volant_core.store.vms import FIRST_GUEST_CID

log = logging.getLogger(__name__)

#: The setting naming the VMM user.
USER_SETTING = "VOLANT_VMM_USER"
#: The setting naming the range of the VMMs' own uids and gids.
ID_RANGE_SETTING = "VOLANT_VMM_ID_RANGE"
#: The value of :data:`USER_SETTING` that leaves VMMs running as root.
UNCONFINED = "root"
#: Mode of a VM's directory under confinement: its VMM's group adds entries, removes only its own.
STICKY_DIR_MODE = 0o1770
#: Mode of the directories above a VM's directory (the VMM user's group, every VMM's, may pass,
#: not list) and of those inside it (the VM's group).
SEARCH_ONLY_MODE = 0o710
#: The value of ``VOLANT_VMM_CGROUP`` that starts VMMs without limits.
NO_CGROUP = "off"


@dataclass(frozen=True)
class VmmIdentity:
    """The uid, gid and supplementary groups one VM's VMM process gets.

    ``uid`` and ``gid`` are that VM's alone; ``groups`` are those of the VMM user ``user``,
    among them ``shared_gid``, its own group: every VMM has it, to pass the directories above
    its VM's.
    """

    user: str
    uid: int
    gid: int
    shared_gid: int
    groups: tuple[int, ...]

    def popen_arguments(self) -> dict[str, Any]:
        """The ``subprocess.Popen`` arguments that start a VMM as this identity, with its groups only."""
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}


@dataclass(frozen=True)
class VmmConfinement:
    """How the VMMs of one daemon are confined (from its settings)."""

    user: str
    cgroup_parent: str
    memory_overhead_mb: int
    state_dir: Path | None = None
    id_range: tuple[int, int] = parse_id_range(DEFAULT_VMM_ID_RANGE)

    @classmethod
    def from_settings(cls, settings: Settings) -> VmmConfinement:
        """The confinement ``settings`` ask for (VM directories under ``settings.state_dir``)."""
        return cls(
            settings.vmm_user,
            settings.vmm_cgroup,
            settings.vmm_memory_overhead_mb,
            settings.state_dir,
            settings.vmm_ids,
        )

    @classmethod
    def from_environment(cls) -> VmmConfinement:
        """The confinement the ``VOLANT_VMM_*`` variables ask for (for launchers built by hand)."""
        return cls.from_settings(load_settings())

    def identity(self, vsock_cid: int) -> VmmIdentity | None:
        """The identity of the VMM of the VM with vsock CID ``vsock_cid``, or None when VMMs run as
        the daemon's own user (it is not root, or :data:`USER_SETTING` is ``root``: logged as a
        warning).

        Its uid and gid are both the first id of :data:`ID_RANGE_SETTING` plus ``vsock_cid``: the
        CID is stored in the VM's row (the same after a daemon restart, so an adopted VMM keeps
        its files) and unique among the VMs of the daemon (and, for vhost-vsock, of the host), so
        no two live VMs share an identity. :class:`LaunchError` with the fix when the VMM user does
        not exist, the id lies past the range, or a user or group of the host already has it.
        """
        if os.geteuid() != 0:
            return None
        if self.user == UNCONFINED:
            log.warning(
                "%s=root: the VMM runs as root, unconfined; a guest escape is host root", USER_SETTING
            )
            return None
        entry = self._vmm_user()
        first, last = self.id_range
        vm_id = first + vsock_cid
        if vm_id > last:
            raise LaunchError(
                f"{ID_RANGE_SETTING}: the VM with vsock CID {vsock_cid} would run as id {vm_id}, past "
                f"the range {first}-{last}; widen the range"
            )
        _require_unused(vm_id)
        groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
        return VmmIdentity(entry.pw_name, vm_id, vm_id, entry.pw_gid, groups)

    def _vmm_user(self) -> pwd.struct_passwd:
        """The VMM user's entry; :class:`LaunchError` with the fix when it is missing or root."""
        try:
            entry = pwd.getpwnam(self.user)
        except KeyError:
            raise LaunchError(
                f"{USER_SETTING}: the user {self.user} that VMMs run as does not exist; create it with "
                f"`volar setup` (as root), or set {USER_SETTING}=root to run VMMs as root, unconfined"
            ) from None
        if entry.pw_uid == 0:
            raise LaunchError(
                f"{USER_SETTING}: {self.user} has uid 0; name an unprivileged user, or root to run unconfined"
            )
        return entry

    def cgroup(self, vm_name: str, vm_dir: Path) -> VmCgroup | None:
        """The cgroup of VM ``vm_name`` whose directory is ``vm_dir``, or None when
        ``VOLANT_VMM_CGROUP`` is ``off``. It is named ``<vm>.<hash of vm_dir>``: two daemons on one
        host (another state directory) may each have a VM of that name.
        """
        if self.cgroup_parent == NO_CGROUP:
            return None
        digest = hashlib.sha256(os.fsencode(vm_dir.absolute())).hexdigest()[:8]
        return VmCgroup(self.cgroup_parent, f"{vm_name}.{digest}")

    def memory_limit(self, memory_mb: int) -> int:
        """The memory limit of a VMM whose guest has ``memory_mb`` MiB (bytes): that plus the overhead."""
        return (memory_mb + self.memory_overhead_mb) * 1024 * 1024


def check_confinement(context: PluginContext) -> HostCheckResult:
    """``volar doctor``: whether VMMs will run as the VMM user and in cgroups of their own."""
    confinement = VmmConfinement.from_settings(context.settings)
    try:
        identity = confinement.identity(FIRST_GUEST_CID)
        cgroup = confinement.cgroup("doctor", context.settings.runtime_dir)
    except LaunchError as err:
        return HostCheckResult("fail", err.message)
    if confinement.user == UNCONFINED and os.geteuid() == 0:
        return HostCheckResult(
            "warn", f"{USER_SETTING}=root: VMMs run as root, unconfined", f"unset {USER_SETTING}"
        )
    who = (
        f"each as ids of its own from {ID_RANGE_SETTING} with the groups of {identity.user}"
        if identity is not None
        else "as this (unprivileged) user"
    )
    if cgroup is None:
        return HostCheckResult(
            "warn", f"VMMs run {who}, without CPU and memory limits", f"unset {CGROUP_SETTING}"
        )
    return HostCheckResult("pass", f"VMMs run {who}, sandboxed, each in a cgroup under {cgroup.parent}")


def hand_over(
    vm_dir: Path, identity: VmmIdentity, *, read: list[Path], write: list[Path], state_dir: Path | None
) -> None:
    """Let the VMM of ``identity`` work in ``vm_dir``: open the files in ``read`` and ``write`` (each
    inside ``vm_dir``; a missing one in ``write`` is created) and create its own (sockets, pidfile).

    The directories from ``state_dir`` (volantd's own, 0700) down to ``vm_dir`` become 0710 with
    the VMM user's group, which every VMM has: it passes them by name, and lists or reads nothing
    else there.

    ``vm_dir`` stays root's, mode 1770 with the VM's own group: no other VM's VMM enters it, and
    this one may add entries but never remove, rename or replace one of root's (sticky), so it
    cannot slip a symbolic link under a name the daemon writes to. The listed files become root's
    with that group, 0640 or 0660, and directories between them and ``vm_dir`` 0710.
    :class:`LaunchError` naming the first directory above ``vm_dir`` the VMM cannot search, or a
    listed file that is not a regular one.
    """
    for directory in reversed(vm_dir.parents):
        found = directory.stat()
        if state_dir is not None and directory.is_relative_to(state_dir):
            _share(directory, identity.shared_gid, SEARCH_ONLY_MODE, directory=True)
        elif not _searchable(found, identity):
            raise LaunchError(
                f"the VMMs, of the user {identity.user}'s groups, cannot reach {vm_dir}: {directory} "
                f"(mode {stat.S_IMODE(found.st_mode):04o}) does not let them search; give its group "
                f"search permission (chgrp {identity.shared_gid} {directory}; chmod g+x {directory}), "
                f"or set {USER_SETTING}=root to run VMMs unconfined",
            )
    _share(vm_dir, identity.gid, STICKY_DIR_MODE, directory=True)
    for paths, file_mode in ((read, 0o640), (write, 0o660)):
        for path in paths:
            for directory in reversed(path.parents):
                if directory.is_relative_to(vm_dir) and directory != vm_dir:
                    _share(directory, identity.gid, SEARCH_ONLY_MODE, directory=True)
            _share(path, identity.gid, file_mode, directory=False)


def daemon_directory(path: Path) -> None:
    """Make ``path`` a directory of the daemon's own before it writes there: whatever else sits at
    that name (a link, a directory of another owner: a VMM may add entries to its VM's directory)
    is removed first, so the daemon never writes through something a VMM planted.
    """
    try:
        found = path.lstat()
    except FileNotFoundError:
        path.mkdir()
        return
    if stat.S_ISDIR(found.st_mode) and found.st_uid == os.geteuid():
        return
    if stat.S_ISDIR(found.st_mode):
        shutil.rmtree(path)
    else:
        path.unlink()
    path.mkdir()


def _share(path: Path, gid: int, mode: int, *, directory: bool) -> None:
    """Make ``path`` (created when missing; never followed if a link) root's, of group ``gid``, ``mode``."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if directory else 0)
    try:
        if directory:
            path.mkdir(exist_ok=True)
            descriptor = os.open(path, flags)
        else:
            descriptor = os.open(path, flags | os.O_CREAT | os.O_NONBLOCK, 0o600)
    except OSError as err:
        raise LaunchError(f"cannot hand {path} to the VMM's group {gid}: {err}") from err
    try:
        if not directory and not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise LaunchError(f"{path} is not a regular file; the VMM cannot be given it")
        os.fchown(descriptor, 0, gid)
        os.fchmod(descriptor, mode)
    finally:
        os.close(descriptor)


def _searchable(mode: os.stat_result, identity: VmmIdentity) -> bool:
    if mode.st_uid == identity.uid:
        return bool(mode.st_mode & stat.S_IXUSR)
    if mode.st_gid in identity.groups:
        return bool(mode.st_mode & stat.S_IXGRP)
    return bool(mode.st_mode & stat.S_IXOTH)


def _require_unused(vm_id: int) -> None:
    """:class:`LaunchError` when a user or group of the host has id ``vm_id``: the VMM would get
    what that account owns."""
    for kind, lookup in (("user", pwd.getpwuid), ("group", grp.getgrgid)):
        try:
            found = lookup(vm_id)
        except KeyError:
            continue
        raise LaunchError(
            f"{ID_RANGE_SETTING}: id {vm_id}, a VMM's own, is the {kind} {found[0]}'s on this host; "
            f"choose a range no user or group uses"
        )
