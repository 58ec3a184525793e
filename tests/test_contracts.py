"""The contract test classes of volant_core.testing catch a backend that does not honour its protocol.

A backend missing a method, or detaching twice with an error, is run through the inherited tests in a
separate pytest run (as a plugin package's own suite would run them), which must fail naming it; the
same tests pass for a complete one. Only the tests that boot nothing run here: the booting parts of
HypervisorContract run in hypervisors/volant-qemu against real guests.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SUITE = """
import pytest
from volant_core.descriptors import NetworkAttachment
from volant_core.testing.contracts import HypervisorContract, NetworkModeContract, make_vm_view


class LaunchOnly:
    def launch(self, spec):
        raise NotImplementedError


class Complete(LaunchOnly):
    def adopt(self, spec, pid):
        return None


class TestMissingAdopt(HypervisorContract):
    @pytest.fixture
    def launcher(self):
        return LaunchOnly()


class TestComplete(HypervisorContract):
    @pytest.fixture
    def launcher(self):
        return Complete()


class StrictDetach:
    def __init__(self):
        self.attached = set()

    def attach(self, vm):
        self.attached.add(vm.name)
        return NetworkAttachment()

    def detach(self, vm):
        self.attached.remove(vm.name)  # a second detach raises KeyError: not idempotent


class TestStrictDetach(NetworkModeContract):
    @pytest.fixture
    def network_mode(self):
        return StrictDetach()

    @pytest.fixture
    def vm(self, tmp_path):
        return make_vm_view("contract", tmp_path)
"""


def run_suite(tmp_path: Path, *selection: str) -> subprocess.CompletedProcess[str]:
    """Run :data:`SUITE` as its own pytest session (no configuration of this repository)."""
    (tmp_path / "test_backend_contract.py").write_text(textwrap.dedent(SUITE))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-c",
        str(tmp_path / "pytest.ini"),
    ]
    return subprocess.run(
        [*argv, "--rootdir", str(tmp_path), str(tmp_path), *selection],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )


def test_a_launcher_missing_a_method_fails_the_contract(tmp_path: Path) -> None:
    done = run_suite(tmp_path, "-k", "launcher_has_the_protocol_methods")
    assert "TestMissingAdopt::test_launcher_has_the_protocol_methods FAILED" in done.stdout or (
        "FAILED test_backend_contract.py::TestMissingAdopt::test_launcher_has_the_protocol_methods"
        in done.stdout
    ), done.stdout
    assert "LaunchOnly has no method adopt()" in done.stdout
    assert (
        "TestComplete::test_launcher_has_the_protocol_methods"
        not in done.stdout.split("short test summary")[-1]
    )
    assert "1 failed, 1 passed" in done.stdout


def test_a_network_mode_whose_detach_is_not_idempotent_fails_the_contract(tmp_path: Path) -> None:
    done = run_suite(tmp_path, "-k", "StrictDetach")
    assert "FAILED test_backend_contract.py::TestStrictDetach::test_attach_then_detach_twice" in done.stdout
    assert (
        "FAILED test_backend_contract.py::TestStrictDetach::test_detach_of_a_vm_never_attached" in done.stdout
    )
    assert "2 failed, 1 passed" in done.stdout, done.stdout
