"""pytest plugin shipped with volant-core for plugin authors (and Volant's own tests).

Enabled automatically through the ``pytest11`` entry point. Fixtures:

* ``volant_guest``: the guest kernel and initramfs, built once per session
  (cached in ``$VOLANT_TEST_CACHE`` when set);
* ``volantd``: a real daemon on a loopback port with its own state directory,
  torn down with every VM it started;
* ``volantd_with_guest``: the same, booting ``volant_guest`` with ``volant_hypervisor``
  (``qemu`` unless a hypervisor package's conftest overrides that fixture);
* ``volantd_host_process``: the same, whose VMs run on the TEST hypervisor
  ``test-host-process`` (kestrel and the workload as host processes, no VM;
  see :mod:`volant_core.testing.hostvm`);
* ``volant_kestrel``: starts kestrel as a host process on a UNIX socket,
  ``volant_kestrel(manifest, **options)`` (see
  :func:`volant_core.testing.kestrel.kestrel_host`), stopped and reaped at
  teardown;
* ``volant_netns``: a fresh network namespace for network plugins (see
  :mod:`volant_core.testing.netns`): ``with volant_netns.enter(): ...`` runs
  the block's thread (and what it starts) inside, ``volant_netns.popen(argv)``
  starts a child inside, ``volant_netns.ipr`` is its pyroute2 ``IPRoute``. At
  teardown it kills what still runs inside, deletes the namespace and fails
  the test when processes, threads or links other than ``lo`` were left in it. Needs
  root and pyroute2 (``pip install 'volant-core[testing]'``).

* ``volant_vmm_user``: the VMM user's entry (skips unless root); ``volant_cgroup_parent``: a
  parent cgroup of the test's own, removed at teardown (see :mod:`volant_core.testing.confinement`).

* ``volant_reap``: ``instance = volant_reap(launcher.launch(spec))`` registers a hypervisor
  instance to kill and reap at teardown (a backend's own launch tests).

Module fixtures that boot guests call :func:`require_qemu` first.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from volant_core.guest import GuestArtifacts, ensure_guest
from volant_core.launch import Instance
from volant_core.testing.confinement import require_vmm_user, scratch_cgroup_parent
from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.hostvm import host_process_daemon
from volant_core.testing.kestrel import KestrelHost, kestrel_host

if TYPE_CHECKING:
    from volant_core.testing.netns import NetworkNamespace

#: A hypervisor's own instance type (what ``volant_reap`` hands back as it was given).
InstanceT = TypeVar("InstanceT", bound=Instance)

#: Environment variable naming a directory to keep built guest images between test sessions.
CACHE_ENV = "VOLANT_TEST_CACHE"


def require_tool(executable: str, package: str) -> str:
    """The path of ``executable`` (a name on PATH or an absolute path); skips the calling test or
    fixture when it is not installed, naming the Debian ``package`` that has it (scripts/bootstrap.sh
    installs every package the tests need).
    """
    found = shutil.which(executable)
    if found is None:
        pytest.skip(f"{executable} is not installed (apt-get install {package}, or make bootstrap)")
    return found


def require_qemu() -> None:
    """Skip the calling test or fixture when QEMU is not installed, saying how to install it."""
    require_tool("qemu-system-x86_64", "qemu-system-x86")


class Reaper:
    """Instances a test launched, killed and reaped when it ends: ``volant_reap(instance)`` returns
    ``instance``, so a launch reads ``instance = volant_reap(launcher.launch(spec))``.
    """

    def __init__(self) -> None:
        self._instances: list[Instance] = []

    def __call__(self, instance: InstanceT) -> InstanceT:
        """Register ``instance``; return it."""
        self._instances.append(instance)
        return instance

    def reap_all(self, grace: float = 10) -> None:
        """Kill every registered instance and wait up to ``grace`` seconds for each to exit."""
        for instance in self._instances:
            instance.kill()
            instance.wait(grace)


@pytest.fixture
def volant_vmm_user() -> pwd.struct_passwd:
    """The VMM user (``volant-vmm``); the test is skipped when not root, failed when it is missing."""
    return require_vmm_user()


@pytest.fixture
def volant_cgroup_parent() -> Iterator[str]:
    """A parent cgroup of this test's own, removed afterwards (with any group left inside)."""
    with scratch_cgroup_parent() as parent:
        yield parent


@pytest.fixture
def volant_reap() -> Iterator[Reaper]:
    """A :class:`Reaper`: the instances registered with it are killed and reaped at teardown."""
    reaper = Reaper()
    yield reaper
    reaper.reap_all()


@pytest.fixture(scope="session")
def volant_guest(tmp_path_factory: pytest.TempPathFactory) -> GuestArtifacts:
    """The guest kernel and initramfs (built from Debian packages on first use)."""
    configured = os.environ.get(CACHE_ENV)
    cache = Path(configured) if configured else tmp_path_factory.mktemp("guest-cache")
    return ensure_guest(cache, log=print)


@pytest.fixture
def volantd() -> Iterator[RunningDaemon]:
    """A running volantd without guest artifacts (for API tests that boot nothing)."""
    with running_daemon() as daemon:
        yield daemon


@pytest.fixture
def volant_hypervisor() -> str:
    """The hypervisor ``volantd_with_guest`` boots VMs with: ``qemu``. A hypervisor package overrides
    this fixture (in its ``conftest.py``) to run the same daemon tests on its own backend.
    """
    return "qemu"


@pytest.fixture
def volantd_with_guest(volant_guest: GuestArtifacts, volant_hypervisor: str) -> Iterator[RunningDaemon]:
    """A running volantd whose VMs boot the session's guest image with ``volant_hypervisor``
    (skipped when that is QEMU and QEMU is not installed).
    """
    if volant_hypervisor == "qemu":
        require_qemu()
    with running_daemon(volant_guest, hypervisor=volant_hypervisor) as daemon:
        yield daemon


@pytest.fixture
def volantd_host_process() -> Iterator[RunningDaemon]:
    """A running volantd whose VMs run on the TEST backend ``test-host-process``: real kestrel,
    real workload, real agent socket, but host processes instead of guests (no QEMU, no image).
    """
    with host_process_daemon() as daemon:
        yield daemon


@pytest.fixture
def volant_kestrel(tmp_path: Path) -> Iterator[Callable[..., KestrelHost]]:
    """``volant_kestrel(manifest, **options)``: a started kestrel in host mode (``options`` as for
    :func:`~volant_core.testing.kestrel.kestrel_host`), each in its own directory under ``tmp_path``;
    every one is stopped and reaped at teardown.
    """
    numbers = itertools.count()
    with contextlib.ExitStack() as running:

        def start(manifest: Mapping[str, Any] | bytes | None, **options: Any) -> KestrelHost:
            directory = tmp_path / f"kestrel-{next(numbers)}"
            directory.mkdir()
            return running.enter_context(kestrel_host(manifest, directory, **options))

        yield start


@pytest.fixture
def volant_netns() -> Iterator[NetworkNamespace]:
    """A new network namespace (:func:`volant_core.testing.netns.network_namespace`), deleted at
    teardown, which fails the test when processes, threads or links were left in it.
    """
    try:
        from volant_core.testing.netns import network_namespace
    except ModuleNotFoundError as missing:
        if missing.name != "pyroute2":
            raise
        pytest.fail(
            "the volant_netns fixture needs pyroute2: install volant-core[testing] "
            "(a plugin lists it in its test dependencies)",
            pytrace=False,
        )
    with network_namespace() as namespace:
        yield namespace
