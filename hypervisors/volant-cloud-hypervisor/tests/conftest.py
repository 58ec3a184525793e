"""Shared fixtures for the Cloud Hypervisor backend tests.

The ``cloud-hypervisor`` binary cannot run on these hosts (no registry ships it, and their KVM does
not run stock guests), so the tests use ``chstandin``, a contract-validating TEST DOUBLE of it (see
``chstandin/__init__.py``), and the contract files copied into ``contracts/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from volant_cloud_hypervisor.launcher import CloudHypervisorLauncher
from volant_cloud_hypervisor.settings import CloudHypervisorSettings

from volant_core.launch import LaunchSpec
from volant_core.testing.confinement import VMM_USER
from volant_core.testing.kestrel import http_server_workload
from volant_core.testing.processes import scratch_dir
from volant_core.testing.specs import http_manifest, manifest_argument, small_spec
from volant_core.vmm_confinement import NO_CGROUP, VmmConfinement

# The stand-in is a package of these tests (not of the distribution): make it importable.
sys.path.insert(0, str(Path(__file__).parent))


#: What the stand-in takes for a PVH vmlinux: an ELF file (it boots nothing).
FAKE_VMLINUX = b"\x7fELF\x02\x01\x01" + b"\0" * 1024


def reachable(path: Path) -> bool:
    """Whether any user may pass every directory above ``path``."""
    return all(directory.stat().st_mode & stat.S_IXOTH for directory in path.resolve().parents)


def reachable_python() -> Path:
    """An interpreter of this Python version that any user may run (a confined VMM runs the
    stand-in with ids of its own): this one when every directory above it lets others through,
    else the system's ``/usr/bin/pythonX.Y``."""
    own = Path(sys.executable).resolve()
    if reachable(own):
        return own
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    return system if system.exists() else own


def write_standin(directory: Path) -> Path:
    """Install the stand-in as ``directory/cloud-hypervisor`` (an executable script any user may
    run, with this environment's packages: it passes them on to the kestrel it starts); its path."""
    site_packages, tests = Path(sysconfig.get_paths()["purelib"]), Path(__file__).parent
    if not (
        reachable(site_packages)
        and reachable(tests)
        and all(map(reachable, _editable_sources(site_packages)))
    ):
        site_packages, tests = _mirror(site_packages, tests, directory / "mirror")
    script = directory / "cloud-hypervisor"
    script.write_text(
        f"#!{reachable_python()}\n"
        '"""Cloud Hypervisor v54 stand-in: a TEST DOUBLE (see chstandin/__init__.py)."""\n'
        "import os, site, sys\n"
        f"site.addsitedir({str(site_packages)!r})\n"
        f"sys.path.insert(0, {str(tests)!r})\n"
        "os.environ['PYTHONPATH'] = os.pathsep.join(path for path in sys.path if path)\n"
        "from chstandin.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    script.chmod(0o755)
    return script


def _editable_sources(site_packages: Path) -> list[Path]:
    """The source directories the ``.pth`` files of ``site_packages`` add to the path (editable
    installs of the workspace's packages)."""
    return [
        Path(line)
        for pth in site_packages.glob("*.pth")
        for line in pth.read_text().splitlines()
        if line.startswith("/")
    ]


def _mirror(site_packages: Path, tests: Path, mirror: Path) -> tuple[Path, Path]:
    """Copies under ``mirror`` of ``site_packages`` (the editable sources its ``.pth`` files name
    too: their packages only) and of the stand-in with its contracts, for when a directory above
    them keeps other users out (a checkout in a private directory, as CI's): a confined VMM runs
    the stand-in with ids of its own. Hard links where the file system allows, else copies.
    """
    site = mirror / "site"
    shutil.copytree(site_packages, site, symlinks=True, copy_function=_link_or_copy)
    for number, pth in enumerate(sorted(site.glob("*.pth"))):
        lines = pth.read_text().splitlines()
        pth.unlink()  # a hard link to the environment's own file: never written through
        sources = mirror / "src" / str(number)
        for line in lines:
            if line.startswith("/"):
                _copy_packages(Path(line), sources)
        pth.write_text("".join(f"{sources if line.startswith('/') else line}\n" for line in lines))
        pth.chmod(0o644)
    stand_in = mirror / "tests"
    for name in ("chstandin", "contracts"):
        shutil.copytree(tests / name, stand_in / name, copy_function=_link_or_copy)
    for directory, _, _ in os.walk(
        mirror
    ):  # made under the test process's umask (an in-process volantd sets 077)
        os.chmod(directory, 0o755)
    return site, stand_in


def _copy_packages(source: Path, target: Path) -> None:
    """Copy the Python packages (directories with an ``__init__.py``) of ``source`` into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for package in source.iterdir():
        if (package / "__init__.py").is_file():
            shutil.copytree(package, target / package.name, copy_function=_link_or_copy)


def _link_or_copy(source: str, target: str) -> None:
    """Hard-link ``source`` at ``target`` when any user may read it; else (or when the file system
    refuses the link) copy it and let any user read the copy."""
    if os.stat(source).st_mode & stat.S_IROTH:
        with contextlib.suppress(OSError):
            os.link(source, target)
            return
    shutil.copy2(source, target)
    os.chmod(target, stat.S_IMODE(os.stat(target).st_mode) | 0o444)


@pytest.fixture(scope="session")
def standin() -> Iterator[Path]:
    """The stand-in executable, in a directory of its own any user may enter (put it on PATH to
    have it found)."""
    directory = Path(tempfile.mkdtemp(prefix="standin-bin-"))
    directory.chmod(0o755)
    try:
        yield write_standin(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def vmm_cgroup(volant_cgroup_parent: str) -> str:
    """``VOLANT_VMM_CGROUP`` for the test's VMMs: a parent of the test's own, or ``off`` when the
    tests do not run as root (only root makes cgroups; such a daemon runs its VMMs as itself)."""
    return volant_cgroup_parent if os.geteuid() == 0 else NO_CGROUP


@pytest.fixture
def launcher(standin: Path, vmm_cgroup: str) -> CloudHypervisorLauncher:
    """A launcher running the stand-in confined as volantd's default (as root: the VM's own ids,
    the ``volant-vmm`` groups, a cgroup under ``vmm_cgroup``)."""
    settings = CloudHypervisorSettings(binary=str(standin), console_log_max_bytes=4096)
    return CloudHypervisorLauncher(settings, confinement=VmmConfinement(VMM_USER, vmm_cgroup, 512))


@pytest.fixture
def vm_dir() -> Iterator[Path]:
    """A short runtime directory (UNIX socket paths must stay under 108 bytes) a confined VMM may
    pass through; every process whose argv names it is killed afterwards, whatever the test did.
    """
    with scratch_dir("vch-") as base:
        base.chmod(0o711)  # as below volantd's state directory
        yield base / "vm"


@pytest.fixture
def kernel(tmp_path: Path) -> Path:
    """A file the stand-in takes for a vmlinux."""
    path = tmp_path / "vmlinux"
    path.write_bytes(FAKE_VMLINUX)
    return path


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory any user may read (a confined VMM's guest serves it); every process whose argv
    names it is killed afterwards."""
    with scratch_dir("vchs-") as directory:
        directory.chmod(0o755)
        yield directory


def reachable_http_workload(workdir: Path) -> dict[str, Any]:
    """A manifest's workload serving ``workdir`` over HTTP with :func:`reachable_python`: a guest
    behind a confined stand-in runs it with the VM's own ids."""
    workload = http_server_workload(workdir)
    return {**workload, "entrypoint": [str(reachable_python()), *workload["entrypoint"][1:]]}


SpecFactory = Callable[..., LaunchSpec]


@pytest.fixture
def make_spec(kernel: Path, shared_dir: Path) -> SpecFactory:
    """A launch spec whose guest (kestrel on the host, behind the stand-in) serves an HTTP workload
    (``shared_dir``, which a VM's own ids may read): ``make_spec(vm_dir, **overrides)``.
    """

    def build(vm_dir: Path, **overrides: Any) -> LaunchSpec:
        manifest = http_manifest(reachable_http_workload(shared_dir))
        arguments = ("console=ttyS0", "panic=-1", manifest_argument(manifest))
        fields = {"kernel": kernel, "kernel_args": arguments, **overrides}
        return small_spec(vm_dir, **fields)

    return build
