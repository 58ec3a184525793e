"""The REST API client against the stand-in, which checks every request against the v54 OpenAPI file
(and its own answers too): the client's paths, methods and bodies are the contract's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from chstandin.records import requests_seen, violations
from conftest import SpecFactory
from volant_cloud_hypervisor.api import ChApiError, CloudHypervisorApi
from volant_cloud_hypervisor.instance import CloudHypervisorInstance
from volant_cloud_hypervisor.launcher import CloudHypervisorLauncher

Reap = Callable[[CloudHypervisorInstance], CloudHypervisorInstance]


@pytest.fixture
def api(
    launcher: CloudHypervisorLauncher, vm_dir: Path, make_spec: SpecFactory, volant_reap: Reap
) -> CloudHypervisorApi:
    instance = volant_reap(launcher.launch(make_spec(vm_dir)))
    return instance.api()


def test_ping_info_and_counters(api: CloudHypervisorApi, vm_dir: Path) -> None:
    assert api.ping()["version"].startswith("v54.")
    info = api.info()
    assert info["state"] == "Running"
    assert info["config"]["cpus"]["boot_vcpus"] == 1 and info["config"]["memory"]["size"] == 256 << 20
    assert info["config"]["vsock"]["cid"] == 3
    assert isinstance(api.counters(), dict)
    assert violations(vm_dir) == ""


def test_one_connection_serves_many_calls(api: CloudHypervisorApi) -> None:
    api.ping()
    connection = api._connection
    for _ in range(5):
        api.info()
    assert api._connection is connection and connection is not None


def test_pause_snapshot_resume(api: CloudHypervisorApi, vm_dir: Path) -> None:
    snapshot = vm_dir / "snap"  # where the confined VMM may write: its VM's directory
    with pytest.raises(ChApiError) as caught:
        api.snapshot(snapshot)  # the contract: only a paused VM is snapshotted
    assert caught.value.status == 405
    api.pause()
    assert api.info()["state"] == "Paused"
    api.snapshot(snapshot)
    assert (snapshot / "config.json").is_file()
    api.resume()
    assert api.info()["state"] == "Running"
    assert violations(vm_dir) == ""


def test_resize_and_hotplug(api: CloudHypervisorApi, vm_dir: Path) -> None:
    api.resize(vcpus=2, memory_bytes=512 << 20)
    assert api.info()["config"]["cpus"]["boot_vcpus"] == 2
    added = api.add_device(Path("/sys/bus/pci/devices/0000:01:00.0/"), device_id="gpu0")
    assert added is not None and added["id"] == "gpu0" and added["bdf"]
    api.remove_device("gpu0")
    with pytest.raises(ChApiError) as caught:
        api.remove_device("gpu0")
    assert caught.value.status == 404
    assert violations(vm_dir) == ""


def test_a_request_off_the_contract_is_refused(api: CloudHypervisorApi, vm_dir: Path) -> None:
    """The stand-in is strict: a misspelled field or a wrong method is an error, never ignored."""
    with pytest.raises(ChApiError) as caught:
        api.call("PUT", "vm.resize", {"desired_cpus": 2})
    assert caught.value.status == 400 and "desired_cpus" in str(caught.value)
    with pytest.raises(ChApiError) as caught:
        api.call("GET", "vm.pause")
    assert caught.value.status == 405
    assert "desired_cpus" in violations(vm_dir)
    assert requests_seen(vm_dir)[-2:] == ["PUT vm.resize 400", "GET vm.pause 405"]


def test_no_socket_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ChApiError, match=r"api\.sock"):
        CloudHypervisorApi(tmp_path / "api.sock", timeout=1).ping()
