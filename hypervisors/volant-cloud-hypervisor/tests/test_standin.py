"""The stand-in itself (a TEST DOUBLE of Cloud Hypervisor v54): it says what it is, refuses a command
line the contract does not allow, and knows every REST call the contract names from the OpenAPI file.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from chstandin.openapi import ApiContract
from chstandin.records import violations
from conftest import FAKE_VMLINUX
from volant_cloud_hypervisor.api import ChApiError, CloudHypervisorApi, api_answers
from volant_cloud_hypervisor.command import build_command
from volant_cloud_hypervisor.paths import VmPaths

from volant_core.testing.waiting import eventually

CLI_CONTRACT = Path(__file__).parent / "contracts" / "cloud-hypervisor-cli.md"


def test_it_says_what_it_is(standin: Path) -> None:
    done = subprocess.run([standin, "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert "v54.0.0" in done.stdout and "TEST DOUBLE" in done.stdout


def test_a_command_line_off_the_contract_is_refused(standin: Path, tmp_path: Path) -> None:
    argv = [standin, "--api-socket", f"path={tmp_path}/api.sock", "--disk", "path=/x,format=raw"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "CONTRACT VIOLATION" in done.stderr and "format" in done.stderr
    assert not (tmp_path / "api.sock").exists()


def test_every_call_the_contract_names_is_in_the_openapi_file() -> None:
    named = set(re.findall(r"`(GET|PUT) /api/v1/([a-z.-]+)`", CLI_CONTRACT.read_text()))
    assert len(named) >= 14
    contract = ApiContract()
    for method, endpoint in named:
        assert contract.operation(method, f"/api/v1/{endpoint}").method == method


def test_it_starts_bare_and_refuses_a_vm_the_v54_schema_does_not_allow(standin: Path, vm_dir: Path) -> None:
    """As the contract double: ``vm.create`` bodies are checked against the OpenAPI schema with
    objects closed (a tap descriptor, ``NetConfig.fds``, is no field of v54's), ``vm.boot`` before
    ``vm.create`` is the contract's 404, and a valid VM is created and booted."""
    vm_dir.mkdir()
    paths = VmPaths(vm_dir)
    with subprocess.Popen([standin, *build_command(paths, binary="ch")[1:]]) as vmm:
        try:
            eventually(lambda: api_answers(paths.api_socket, 2.0), "the bare stand-in answers")
            with CloudHypervisorApi(paths.api_socket) as api:
                with pytest.raises(ChApiError) as not_created:
                    api.boot()
                kernel = vm_dir / "vmlinux"
                kernel.write_bytes(FAKE_VMLINUX)
                config = {"payload": {"kernel": str(kernel)}, "net": [{"tap": "vt-x0", "fds": [3]}]}
                with pytest.raises(ChApiError, match="fds") as refused:
                    api.create(config)
                del config["net"]
                api.create(config)
                api.boot()
                assert api.info()["state"] == "Running"
                api.shutdown_vmm()
            assert vmm.wait(30) == 0
        finally:
            vmm.kill()
    assert (not_created.value.status, refused.value.status) == (404, 400)
    assert "fds" in violations(vm_dir)
