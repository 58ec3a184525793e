"""The stand-in itself (a TEST DOUBLE of Cloud Hypervisor v54): it says what it is, refuses a command
line the contract does not allow, and knows every REST call the contract names from the OpenAPI file.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from chstandin.openapi import ApiContract

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
