"""The bare command line: every emitted option allowed by the contract's grammar (``chstandin.argv``,
written from ``contracts/cloud-hypervisor-cli.md``, which the stand-in parses its own argv with).
The VM itself goes over the API (``test_vmconfig.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from chstandin.argv import OPTIONS, ContractViolation, parse_argv
from volant_cloud_hypervisor.command import build_command
from volant_cloud_hypervisor.paths import VmPaths

from volant_core.errors import LaunchError

CONTRACT = Path(__file__).parent / "contracts" / "cloud-hypervisor-cli.md"
VM_DIR = Path("/run/volant/vms/web")


def test_the_vmm_starts_bare_with_its_api_events_log_and_filter_and_the_grammar_accepts_it() -> None:
    argv = build_command(VmPaths(VM_DIR), binary="/usr/bin/cloud-hypervisor")
    assert argv[0] == "/usr/bin/cloud-hypervisor"
    parsed = parse_argv(argv[1:])
    paths = VmPaths(VM_DIR)
    assert parsed.pairs("--api-socket") == {"path": str(paths.api_socket)}
    assert parsed.pairs("--event-monitor") == {"path": str(paths.event_monitor)}
    assert parsed.one("--log-file") == str(paths.vmm_log)
    assert parsed.one("--seccomp") == "true"
    assert set(parsed.options) == {"--api-socket", "--event-monitor", "--log-file", "--seccomp"}
    assert parsed.flags == []


def test_the_grammar_covers_every_option_of_the_contract_table() -> None:
    """The hand-written grammar names exactly the options of the contract's table (no drift)."""
    table = set(re.findall(r"^\| `(-[-a-z]+)`", CONTRACT.read_text(), re.MULTILINE))
    flags = {"--landlock", "--no-shutdown", "-v"}
    # --landlock-rules is named in the --landlock row.
    assert table - flags == set(OPTIONS) - {"--landlock-rules"}


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--net", "tap=t0,ip=,mac=52:54:00:00:00:01"], "ip="),
        (["--vsock", "cid=3"], "socket= is required"),
        (["--vsock", "cid=2,socket=/s"], "cid"),
        (["--disk", "path=/d,image_type=vmdk"], "image_type"),
        (["--disk", "path=/d,format=raw"], "unknown key 'format'"),
        (["--serial", "socket"], "not key=value"),
        (["--device", "path=/sys/bus/pci/devices/0000:01:00.0"], "<BDF>/"),
        (["--memory", "size=256MiB"], "size"),
        (["--seccomp", "yes"], "not one of"),
        (["--api-socket", "/run/api.sock"], "not key=value"),
        (["--vsock", "cid=3,socket=/a", "--vsock", "cid=4,socket=/b"], "at most one"),
        (["-drive", "file=x"], "unknown option"),
    ],
)
def test_the_grammar_refuses_what_the_contract_does_not_allow(argv: list[str], complaint: str) -> None:
    with pytest.raises(ContractViolation, match=re.escape(complaint)):
        parse_argv(argv)


def test_a_vm_dir_the_option_syntax_cannot_carry_is_refused_naming_the_field() -> None:
    with pytest.raises(LaunchError) as caught:
        build_command(VmPaths(Path("/run/a,b")), binary="ch")
    assert caught.value.field == "vm_dir"


def test_a_vm_dir_too_long_for_a_socket_is_refused() -> None:
    with pytest.raises(LaunchError, match="107"):
        build_command(VmPaths(Path("/run/" + "v" * 100)), binary="ch")
