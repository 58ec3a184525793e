"""The plugin in a real volantd (in-process, on loopback, its VMs kestrel host processes through
the TEST host-process backend) over the synthetic sysfs tree (:mod:`volant_vfio.testing`, the TEST
DOUBLE standing in for the kernel's PCI files): a VM asking for a PCI device gets it bound to
vfio-pci, a second VM asking for it is refused naming the first, also after a daemon restart, and
the device goes back to its host driver when the VM stops or is deleted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from volant_vfio.testing import GPU, NIC, NO_OVERRIDE, SPARE, SysfsTree

from volant_core.sdk import Capability, HypervisorDescriptor, hookimpl
from volant_core.testing import hostvm
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.kestrel import http_server_workload

#: The TEST backend, declaring ``pci-passthrough`` (kestrel runs on the host; no device reaches it).
WITH_PCI = "test-host-pci"


class WithPci:
    """Registers the host-process backend again, this time with ``pci-passthrough``."""

    @hookimpl
    def volant_hypervisors(self) -> list[HypervisorDescriptor]:
        """The test backend."""
        capabilities = frozenset({Capability.ADOPT, Capability.PCI_PASSTHROUGH})
        return [HypervisorDescriptor(WITH_PCI, hostvm.HostProcessLauncher, "TEST", capabilities=capabilities)]


@pytest.fixture
def daemon(tmp_path: Path, sysfs_tree: SysfsTree) -> Iterator[RunningDaemon]:
    """A daemon on :data:`WITH_PCI` with the ``files`` runtime, NIC, GPU and SPARE allowed."""
    runtime = {"name": "files", "version": "1.0.0", "workload": http_server_workload(tmp_path)}
    plugin_settings = {
        "VOLANT_VFIO_SYSFS_ROOT": str(sysfs_tree.root),
        "VOLANT_VFIO_ALLOWED_DEVICES": f"{NIC},{GPU},{SPARE}",
    }
    with hostvm.host_process_daemon(
        plugins=[("with-pci", WithPci())],
        plugin_settings=plugin_settings,
        hypervisor=WITH_PCI,
        stop_timeout=5,
    ) as running:
        assert running.request("POST", "/api/v1/plugins", runtime).status == 201
        yield running


def create(daemon: RunningDaemon, name: str, *addresses: str) -> Any:
    """Ask for VM ``name`` with ``addresses`` passed through; the reply."""
    config = {"devices": {"pci_passthrough": list(addresses)}}
    return daemon.request("POST", "/api/v1/vms", {"name": name, "plugin": "files", "config": config})


def test_a_vm_gets_its_device_bound_and_gives_it_back_when_deleted(
    daemon: RunningDaemon, sysfs_tree: SysfsTree
) -> None:
    assert create(daemon, "web", NIC).status == 201
    assert daemon.wait_for_status("web", {"running", "crashed"})["status"] == "running"
    assert sysfs_tree.driver_link(NIC) == "../../drivers/vfio-pci"
    assert sysfs_tree.override(NIC) == "vfio-pci"
    listed = {d["address"]: d for d in daemon.request("GET", "/api/v1/vfio/devices").json()}
    assert listed[NIC]["vm"] == "web" and listed[NIC]["driver"] == "vfio-pci"
    assert daemon.request("DELETE", "/api/v1/vms/web").status == 204
    assert sysfs_tree.driver_link(NIC) == "../../drivers/ixgbe"
    assert sysfs_tree.override(NIC) == NO_OVERRIDE
    assert daemon.request("GET", f"/api/v1/vfio/devices/{NIC}").json()["vm"] is None


def test_stop_gives_the_device_back_and_start_binds_it_again(
    daemon: RunningDaemon, sysfs_tree: SysfsTree
) -> None:
    assert create(daemon, "web", NIC).status == 201
    daemon.wait_for_status("web", {"running"})
    assert daemon.request("POST", "/api/v1/vms/web/stop").status == 200
    daemon.wait_for_status("web", {"stopped"})
    assert sysfs_tree.driver_link(NIC) == "../../drivers/ixgbe"
    assert create(daemon, "other", NIC).status == 201  # free while web is stopped
    daemon.wait_for_status("other", {"running"})
    assert daemon.request("DELETE", "/api/v1/vms/other").status == 204
    assert daemon.request("POST", "/api/v1/vms/web/start").status == 200
    daemon.wait_for_status("web", {"running"})
    assert sysfs_tree.driver_link(NIC) == "../../drivers/vfio-pci"


def test_a_second_vm_is_refused_the_device_naming_the_holder_also_after_a_restart(
    daemon: RunningDaemon, sysfs_tree: SysfsTree
) -> None:
    assert create(daemon, "web", NIC).status == 201
    daemon.wait_for_status("web", {"running"})
    for attempt in ("before", "after"):
        refused = create(daemon, "thief", NIC)
        assert refused.status == 409, (attempt, refused.json())
        assert f"{NIC} is attached to vm 'web'" in refused.json()["error"]["message"]
        assert daemon.request("GET", "/api/v1/vms/thief").status == 404  # nothing half-made stays
        if attempt == "before":
            daemon.restart()
            assert daemon.wait_for_status("web", {"running", "crashed"})["status"] == "running"
    assert sysfs_tree.driver_link(NIC) == "../../drivers/vfio-pci"
    assert daemon.request("DELETE", "/api/v1/vms/web").status == 204
    assert sysfs_tree.driver_link(NIC) == "../../drivers/ixgbe"


def test_refusals_at_create_name_the_field(daemon: RunningDaemon, sysfs_tree: SysfsTree) -> None:
    grouped = create(daemon, "gpu", GPU)
    assert grouped.status == 422
    error = grouped.json()["error"]
    assert error["details"][0]["field"] == "devices.pci_passthrough[0]"
    assert "0000:02:00.1" in error["message"] and "snd_hda_intel" in error["message"]
    not_allowed = create(daemon, "nic", "0000:01:00.1")
    assert (
        not_allowed.status == 422 and "VOLANT_VFIO_ALLOWED_DEVICES" in not_allowed.json()["error"]["message"]
    )
    assert daemon.request("GET", "/api/v1/vms").json() == []
    assert sysfs_tree.driver_link(GPU) == "../../drivers/nouveau"


def test_the_validate_route_answers_what_create_would(daemon: RunningDaemon) -> None:
    ok = daemon.request("POST", "/api/v1/vfio/devices/validate", {"devices": {"pci_passthrough": [SPARE]}})
    assert ok.status == 200 and ok.json() == {"valid": True}
    bad = daemon.request("POST", "/api/v1/vfio/devices/validate", {"devices": {"pci_passthrough": [GPU]}})
    assert bad.status == 422 and "snd_hda_intel" in bad.json()["error"]["message"]
    typo = daemon.request("POST", "/api/v1/vfio/devices/validate", {"device": {}})
    assert typo.status == 422
    as_text = daemon.request(
        "POST", "/api/v1/vfio/devices/validate", raw=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert as_text.status == 415  # a web page cannot post to it either
    documented = daemon.request("GET", "/openapi").json()["paths"]
    assert {"/api/v1/vfio/devices", "/api/v1/vfio/devices/validate", "/api/v1/vfio/devices/{address}"} <= set(
        documented
    )
    assert daemon.request("GET", "/api/v1/vfio/devices/0000:09:00.0").status == 404
