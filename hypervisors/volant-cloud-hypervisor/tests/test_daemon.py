"""The whole lifecycle through a real volantd with ``--hypervisor cloud-hypervisor`` and the stand-in
(a TEST DOUBLE of the binary, which cannot run here) on PATH, kestrel behind its hybrid vsock. The
daemon runs as root with its default confinement (in a parent cgroup of the test's own): each
VMM runs with its VM's own ids, in its VM's cgroup.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chstandin.records import BOOT_REQUESTS, requests_seen, violations
from conftest import FAKE_VMLINUX, reachable_http_workload

from volant_core.agent.constants import READY_LINE
from volant_core.settings import DEFAULT_VMM_ID_RANGE, parse_id_range
from volant_core.testing.confinement import cgroup_limits, process_status
from volant_core.testing.daemon import RunningDaemon, running_daemon, volantd_process, wait_for_vm_status
from volant_core.testing.processes import default_sigint, processes_mentioning
from volant_core.testing.waiting import eventually, free_port

BOOT = 90.0
#: What kestrel prints when the guest shuts down.
SHUTDOWN_LINE = "kestrel: shutting down"


@pytest.fixture
def standin_on_path(standin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``cloud-hypervisor`` on PATH is the stand-in (as the real binary would be found)."""
    monkeypatch.setenv("PATH", f"{standin.parent}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture
def boot_files(tmp_path: Path) -> dict[str, Path]:
    """A kernel the stand-in takes for a vmlinux, and an empty base initramfs (it boots nothing)."""
    kernel, initramfs = tmp_path / "vmlinux", tmp_path / "initramfs.img"
    kernel.write_bytes(FAKE_VMLINUX)
    initramfs.write_bytes(b"")
    return {"kernel": kernel, "initramfs": initramfs}


@pytest.fixture
def manifest(shared_dir: Path) -> dict[str, Any]:
    """A runtime serving HTTP (a directory the VM's own ids may read), with an action."""
    return {
        "name": "web",
        "version": "1.0.0",
        "runtime": "web",
        "workload": reachable_http_workload(shared_dir),
        "health_check": {"endpoint": "/", "timeout_ms": 10000},
        "actions": {"index": {"method": "GET", "path": "/"}},
    }


@pytest.fixture
def daemon(standin_on_path: None, boot_files: dict[str, Path], vmm_cgroup: str) -> Iterator[RunningDaemon]:
    """volantd on the cloud-hypervisor backend, its VMMs' cgroups under ``vmm_cgroup``."""
    with running_daemon(hypervisor="cloud-hypervisor", vmm_cgroup=vmm_cgroup, **boot_files) as running:
        yield running


def _non_pings(vm_dir: Path) -> list[str]:
    return [line for line in requests_seen(vm_dir) if "vmm.ping" not in line]


def _workload_argv(manifest: dict[str, Any]) -> str:
    """What the argv of the manifest's workload contains (its module and port)."""
    return "\0".join(manifest["workload"]["entrypoint"][1:4])


def _kestrel_of(vm_dir: Path) -> int:
    (pid,) = processes_mentioning(str(vm_dir / "chstandin-kestrel.sock"))
    return pid


def test_create_use_stop_start_crash_and_reboot(daemon: RunningDaemon, manifest: dict[str, Any]) -> None:
    assert daemon.request("POST", "/api/v1/plugins", manifest).status == 201
    assert daemon.request("POST", "/api/v1/vms", {"name": "web", "plugin": "web"}).status == 201
    vm = daemon.wait_for_status("web", {"running", "crashed"}, BOOT)
    assert vm["status"] == "running", vm
    assert vm["hypervisor"] == "cloud-hypervisor"
    vm_dir = Path(vm["runtime_dir"])
    _check_confined(vm, daemon.daemon.settings.vmm_cgroup)

    # The agent, over hybrid vsock: proxy, actions, logs.
    assert daemon.request("GET", "/api/v1/vms/web/agent/v1/").status == 200
    assert daemon.request("POST", "/api/v1/vms/web/actions/index").status == 200
    assert daemon.request("GET", "/api/v1/vms/web/logs").status == 200

    # Stop: the power button, and the guest powers off.
    assert daemon.request("POST", "/api/v1/vms/web/stop").status == 200
    assert daemon.wait_for_status("web", {"stopped"}, 60)["status"] == "stopped"
    assert _non_pings(vm_dir) == [*BOOT_REQUESTS, "PUT vm.power-button 204"]
    assert processes_mentioning(str(vm_dir)) == []

    # Start again (the console log keeps the first boot's output); kill -9 of the VMM is a crash.
    assert daemon.request("POST", "/api/v1/vms/web/start").status == 200
    vm = daemon.wait_for_status("web", {"running", "crashed"}, BOOT)
    assert vm["status"] == "running", vm
    eventually(lambda: (vm_dir / "console.log").read_text().count(READY_LINE) >= 2, "both boots logged", 30)
    os.kill(vm["pid"], signal.SIGKILL)
    crashed = daemon.wait_for_status("web", {"crashed"}, 60)
    assert crashed["status_reason"] == f"VMM exited with status {-signal.SIGKILL}", crashed
    # kestrel, told by the stand-in's death, stops the workload (its port is free for the next boot) and ends.
    eventually(
        lambda: not processes_mentioning(_workload_argv(manifest)), "the workload of the killed VMM ends"
    )
    eventually(
        lambda: not processes_mentioning(str(vm_dir / "chstandin-kestrel.sock")),
        "the killed VMM's kestrel ends",
    )

    # A guest that resets (its PID 1 died: a panic, and panic=-1 reboots it) is a crash too.
    assert daemon.request("POST", "/api/v1/vms/web/start").status == 200
    assert daemon.wait_for_status("web", {"running", "crashed"}, BOOT)["status"] == "running"
    os.kill(_kestrel_of(vm_dir), signal.SIGKILL)
    crashed = daemon.wait_for_status("web", {"crashed"}, 60)
    # Ended by the backend on the reset event, not by failing health probes.
    assert crashed["status_reason"] == f"VMM exited with status {-signal.SIGKILL}", crashed
    assert '"rebooting"' in (vm_dir / "events.json").read_text()
    assert violations(vm_dir) == ""


def test_a_killed_volantd_readopts_its_vms(
    standin_on_path: None,
    boot_files: dict[str, Path],
    manifest: dict[str, Any],
    shared_dir: Path,
    vmm_cgroup: str,
) -> None:
    state = shared_dir / "state"  # the VMMs, with ids of their own, pass the directories above it
    state.mkdir()
    port = free_port()
    environment = {**os.environ, "VOLANT_VMM_CGROUP": vmm_cgroup}
    args = ["--hypervisor", "cloud-hypervisor", "--kernel", str(boot_files["kernel"])]
    args += ["--initramfs", str(boot_files["initramfs"])]
    try:
        with volantd_process(state, port, env=environment, extra_args=args, preexec=default_sigint) as first:
            api = first.client()
            assert api.send("POST", "/api/v1/plugins", manifest).status == 201
            assert api.send("POST", "/api/v1/vms", {"name": "web", "plugin": "web"}).status == 201
            vm = _wait(api, "running")
            _check_confined(vm, vmm_cgroup)
            first.process.kill()  # kill -9: the VM keeps running
            first.process.wait(30)
        with volantd_process(state, port, env=environment, extra_args=args, preexec=default_sigint) as second:
            api = second.client()
            again = _wait(api, "running")
            assert again["pid"] == vm["pid"], "the VMM was not re-adopted"
            assert api.send("GET", "/api/v1/vms/web/agent/v1/").status == 200
            assert api.send("POST", "/api/v1/vms/web/stop").status == 200
            assert _wait(api, "stopped")["status"] == "stopped"
            vm_dir = Path(vm["runtime_dir"])
            assert _non_pings(vm_dir) == [*BOOT_REQUESTS, "PUT vm.power-button 204"]
            # The console relay was attached again: what the guest printed at its poweroff is logged.
            assert SHUTDOWN_LINE in (vm_dir / "console.log").read_text()
    finally:
        for pid in processes_mentioning(str(state)):
            os.kill(pid, signal.SIGKILL)


def _check_confined(vm: dict[str, Any], cgroup_parent: str) -> None:
    """The VM's VMM runs with its VM's own ids (as root volantd confines it), and was in its VM's
    cgroup when the guest was booted (as the stand-in found at ``vm.boot``)."""
    if os.geteuid() != 0:
        return  # a daemon that is not root runs its VMMs as itself
    own_id = str(parse_id_range(DEFAULT_VMM_ID_RANGE)[0] + vm["vsock_cid"])
    assert process_status(vm["pid"])["Uid"].split() == [own_id] * 4
    booted = json.loads((Path(vm["runtime_dir"]) / "chstandin-boot.json").read_text())
    at_boot = cgroup_limits(booted["cgroup"])
    assert all(f"/{cgroup_parent}/{vm['name']}." in at_boot[f"{c}-group"] for c in ("cpu", "memory"))


def _wait(api: Any, status: str) -> dict[str, Any]:
    vm = wait_for_vm_status(api, "web", {status, "crashed"}, BOOT)
    assert vm["status"] == status, vm
    return vm
