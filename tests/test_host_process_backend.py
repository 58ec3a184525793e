"""The TEST hypervisor ``test-host-process``: manifest discovery, launch, stop, kill, adopt, no leaks."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core.agent_client import AgentClient
from volant_core.errors import LaunchError
from volant_core.guest.cpio import CpioEntry, file_layer, gzip_bytes, initramfs_files, newc_archive
from volant_core.launch import LaunchSpec
from volant_core.manifest import CMDLINE_MANIFEST_BUDGET, encode_for_guest, parse_manifest
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import HostProcessInstance, HostProcessLauncher, boot_manifest
from volant_core.testing.processes import processes_mentioning
from volant_core.testing.waiting import eventually


def _spec(vm_dir: Path, *, kernel_args: tuple[str, ...] = (), initramfs: Path | None = None) -> LaunchSpec:
    return LaunchSpec(
        name=vm_dir.name,
        vm_dir=vm_dir,
        cpu_cores=1,
        memory_mb=128,
        kernel=vm_dir / "no-kernel",
        vsock_cid=3,
        initramfs=initramfs,
        kernel_args=("console=hvc0", *kernel_args),
    )


def _cmdline_arg(manifest: dict[str, Any]) -> str:
    return "volant.manifest=" + encode_for_guest(parse_manifest(manifest))


# --------------------------------------------------------------- manifest discovery


def test_initramfs_files_reads_layers_in_order(tmp_path: Path) -> None:
    base = gzip_bytes(newc_archive([CpioEntry.directory("etc"), CpioEntry.file("etc/hostname", b"base\n")]))
    first = file_layer({"volant/manifest.json": b"{}"})
    second = file_layer({"volant/manifest.json": b'{"b": 2}', "etc/extra": b"x"}, compress=False)
    files = initramfs_files(base + first + b"\0" * 8 + second)
    assert files == {"/etc/hostname": b"base\n", "/volant/manifest.json": b'{"b": 2}', "/etc/extra": b"x"}
    with pytest.raises(ValueError, match="not a newc archive"):
        initramfs_files(b"BZh9 not gzip")
    with pytest.raises(ValueError, match="truncated"):
        initramfs_files(first[:-10])


def test_manifest_comes_from_the_kernel_command_line(tmp_path: Path, host_manifest: dict[str, Any]) -> None:
    spec = _spec(tmp_path, kernel_args=(_cmdline_arg(host_manifest),))
    assert json.loads(boot_manifest(spec)) == json.loads(
        parse_manifest(host_manifest).model_dump_json(by_alias=True, exclude_none=True)
    )


def test_manifest_comes_from_the_last_initramfs_layer(tmp_path: Path) -> None:
    image = tmp_path / "initramfs.img"
    image.write_bytes(
        file_layer({"volant/manifest.json": b"old"}) + file_layer({"volant/manifest.json": b"new"})
    )
    assert boot_manifest(_spec(tmp_path, initramfs=image)) == b"new"


def test_no_manifest_is_a_launch_error(tmp_path: Path) -> None:
    image = tmp_path / "initramfs.img"
    image.write_bytes(file_layer({"etc/motd": b"hi"}))
    with pytest.raises(LaunchError, match=r"no volant\.manifest="):
        HostProcessLauncher().launch(_spec(tmp_path / "vm", initramfs=image))
    with pytest.raises(LaunchError, match="kernel command line"):
        boot_manifest(_spec(tmp_path, kernel_args=("volant.manifest=%%%",)))
    assert not (tmp_path / "vm").exists()


# ------------------------------------------------------------ processes and lifecycle


@pytest.fixture
def launched(
    tmp_path: Path, host_manifest: dict[str, Any]
) -> Iterator[tuple[HostProcessInstance, LaunchSpec]]:
    """A kestrel launched by the backend and healthy; killed at teardown whatever happened."""
    spec = _spec(tmp_path / "vm", kernel_args=(_cmdline_arg(host_manifest),))
    instance = HostProcessLauncher().launch(spec)
    try:
        AgentClient(instance.agent_channel).wait_healthy(30, alive=instance.alive)
        yield instance, spec
    finally:
        instance.kill()
        instance.wait(10)


def test_launch_runs_kestrel_in_the_vm_directory(launched: Any, host_manifest: dict[str, Any]) -> None:
    instance, spec = launched
    assert processes_mentioning(str(spec.vm_dir)) == [instance.pid]
    assert os.getsid(instance.pid) == instance.pid  # its own session
    assert len(processes_mentioning(host_manifest["workload"]["entrypoint"][-1])) == 1
    assert instance.accelerator == "none" and instance.console_socket is None
    assert instance.console_log == spec.vm_dir / "kestrel.log"
    assert AgentClient(instance.agent_channel).get("/v1/manifest").json()["name"] == "hello-host"


def test_stop_shuts_kestrel_and_its_workload_down(launched: Any, host_manifest: dict[str, Any]) -> None:
    instance, spec = launched
    assert instance.stop(10) == 0
    assert instance.stop(10) == 0  # idempotent
    assert not instance.alive()
    marker = host_manifest["workload"]["entrypoint"][-1]
    eventually(lambda: not processes_mentioning(marker), f"no process mentioning {marker}", timeout=10)
    assert processes_mentioning(str(spec.vm_dir)) == []


def test_kill_takes_the_workload_with_it(launched: Any, host_manifest: dict[str, Any]) -> None:
    instance, _ = launched
    instance.kill()
    assert instance.wait(10) == -9
    instance.kill()  # idempotent
    marker = host_manifest["workload"]["entrypoint"][-1]
    eventually(lambda: not processes_mentioning(marker), f"no process mentioning {marker}", timeout=10)


def test_adopt_finds_only_its_own_kestrel(launched: Any, tmp_path: Path) -> None:
    instance, spec = launched
    launcher = HostProcessLauncher()
    adopted = launcher.adopt(spec, instance.pid)
    assert adopted is not None and adopted.pid == instance.pid and adopted.alive()
    assert launcher.adopt(_spec(tmp_path / "other"), instance.pid) is None
    assert launcher.adopt(spec, os.getpid()) is None
    adopted.kill()
    assert instance.wait(10) == -9
    assert adopted.wait(10) == 0
    assert launcher.adopt(spec, instance.pid) is None
    assert not (spec.vm_dir / "agent.sock").exists()  # the stale socket is removed


def test_adopt_without_a_pid_kills_the_kestrel_of_a_launch_cut_short(launched: Any) -> None:
    """volantd died after the launch and before it recorded the pid: at recovery nothing is adopted
    and the kestrel serving the VM's socket is killed (no process runs for a crashed VM).
    """
    instance, spec = launched
    assert HostProcessLauncher().adopt(spec, None) is None
    assert instance.wait(10) == -9
    assert processes_mentioning(str(spec.vm_dir)) == []


# ------------------------------------------------------------------- through volantd


def test_a_large_manifest_reaches_kestrel_through_the_initramfs(
    volantd_host_process: RunningDaemon, host_manifest: dict[str, Any]
) -> None:
    api = volantd_host_process
    host_manifest["workload"]["env"] = {f"KEY_{i}": secrets.token_hex(32) for i in range(40)}
    assert len(encode_for_guest(parse_manifest(host_manifest))) > CMDLINE_MANIFEST_BUDGET
    assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
    assert api.request("POST", "/api/v1/vms", {"name": "big", "plugin": "hello-host"}).status == 201
    vm = api.wait_for_status("big", {"running", "crashed"}, timeout=60)
    assert vm["status"] == "running", vm
    assert (Path(vm["runtime_dir"]) / "initramfs.img").is_file()  # the manifest layer was composed
    served = api.request("GET", "/api/v1/vms/big/agent/v1/manifest").json()
    assert served["workload"]["env"] == host_manifest["workload"]["env"]
