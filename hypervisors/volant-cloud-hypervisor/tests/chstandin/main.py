"""``cloud-hypervisor`` stand-in (TEST DOUBLE): the entry point the tests install on PATH."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from chstandin.argv import ContractViolation, parse_argv
from chstandin.machine import VERSION, Machine, become_subreaper
from chstandin.openapi import ApiContract
from chstandin.rest import serve_api


def main(argv: Sequence[str]) -> int:
    """Run as Cloud Hypervisor v54 would with ``argv``; the exit status."""
    if list(argv) in (["--version"], ["-V"]):
        print(f"cloud-hypervisor {VERSION} (stand-in: a TEST DOUBLE that boots nothing)")
        return 0
    try:
        command = parse_argv(argv)
    except ContractViolation as exc:
        print(f"cloud-hypervisor stand-in: CONTRACT VIOLATION: {exc}", file=sys.stderr)
        return 1
    if "--api-socket" not in command.options or "path" not in command.pairs("--api-socket"):
        print("cloud-hypervisor stand-in: needs --api-socket path=<path>", file=sys.stderr)
        return 1
    if command.one("--kernel") is not None:
        print(
            "cloud-hypervisor stand-in: it models a VMM started bare, whose VM comes over the API "
            "(vm.create, vm.boot); a VM on the command line is not modelled",
            file=sys.stderr,
        )
        return 1
    become_subreaper()
    machine = Machine(command)
    api = serve_api(machine, ApiContract())
    machine.log(f"{VERSION} started with {len(argv)} arguments")
    try:
        return machine.run()
    finally:
        machine.stop()
        api.server_close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
