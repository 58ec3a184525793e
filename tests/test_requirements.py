"""Nothing accepted and ignored: a field nothing installed honours is refused naming it (and the package
that would handle it), at install, create, PATCH and rollback; hypervisor capabilities are checked and
shown. Real daemons on the host-process backend, whose only capability is ``adopt``.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

from volant_core import hookimpl
from volant_core.launch import HypervisorDescriptor
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import HostProcessLauncher, host_process_daemon

#: The test plugin of tests/test_plugin_api.py (from its source tree): a device driver for PCI
#: devices (``example-pci``) and a seed builder (``example-seed``), whose host resources are files.
sys.path.insert(0, str(Path(__file__).parent / "packages" / "volant-lifecycle-example"))
from volant_lifecycle_example import plugin as example

#: No device driver installed: the `devices` refusals name volant-vfio.
pytestmark = pytest.mark.usefixtures("without_vfio", "without_cloudinit")


def _refusal(answer: Any) -> tuple[str, str]:
    error = answer.json()["error"]
    return error["details"][0]["field"], error["message"]


CONFIG_REFUSALS = [
    (
        "devices",
        {"devices": {"pci_passthrough": ["0000:01:00.0"]}},
        "devices.pci_passthrough",
        "devices.pci_passthrough: no device driver for pci devices is installed (pip install volant-vfio)",
    ),
    (
        "cloud-init",
        {"cloud_init": {"user_data": {"content": "#cloud-config"}}},
        "cloud_init.seed_mode",
        "cloud_init.seed_mode: unknown seed builder 'vfat' (pip install volant-cloudinit); choose one of: "
        "none installed",
    ),
    (
        "expose",
        {"expose": [{"port": 80}]},
        "expose",
        "expose: network mode 'none' does not publish ports; use one that does, e.g. bridged "
        "(pip install volant-network-bridged), or remove expose",
    ),
    (
        "subnet",
        {"network": {"mode": "none", "subnet": "10.9.0.0/24"}},
        "network.subnet",
        "network.subnet: network mode 'none' does not use it; remove it (addresses come from the daemon's "
        "pool, VOLANT_SUBNET)",
    ),
    (
        "api",
        {"api": {"host": "10.0.0.1"}},
        "api",
        "api: not used by this Volant (the host reaches kestrel over the VM's agent channel); remove it",
    ),
    (
        "cloud-init path",
        {"cloud_init": {"network_config": {"path": "/etc/netplan/50.yaml"}}},
        "cloud_init.network_config.path",
        "cloud_init.network_config.path: the API takes the document itself as content (volar reads a file "
        "given as path and sends its content)",
    ),
    (
        "rootfs",
        {"rootfs": {"url": "http://127.0.0.1:9/root.img"}},
        "rootfs",
        "rootfs: a root filesystem image needs the hypervisor capability 'disks', which hypervisor "
        "'test-host-process' lacks (it offers: adopt, test-only); choose another hypervisor or drop it",
    ),
]


@pytest.mark.parametrize(
    ("what", "config", "field", "refusal"), CONFIG_REFUSALS, ids=[c[0] for c in CONFIG_REFUSALS]
)
def test_create_refuses_what_nothing_honours(
    host_api: RunningDaemon, what: str, config: dict[str, Any], field: str, refusal: str
) -> None:
    answer = host_api.request(
        "POST", "/api/v1/vms", {"name": "refused", "plugin": "hello-host", "config": config}
    )
    assert answer.status == 422, answer.json()
    named, message = _refusal(answer)
    assert named == field and message == refusal  # the whole rule: what is missing and what to do
    assert host_api.request("GET", "/api/v1/vms").json() == []


def test_install_refuses_a_manifest_nothing_can_boot(
    host_api: RunningDaemon, host_manifest: dict[str, Any]
) -> None:
    manifest = copy.deepcopy(host_manifest)
    manifest["name"] = manifest["runtime"] = "needs-a-gpu"
    manifest["devices"] = {"pci_passthrough": ["0000:01:00.0"]}
    answer = host_api.request("POST", "/api/v1/plugins", manifest)
    assert answer.status == 422
    field, message = _refusal(answer)
    assert field == "devices.pci_passthrough" and "pip install volant-vfio" in message
    assert host_api.request("GET", "/api/v1/plugins/needs-a-gpu").status == 404


def test_install_refuses_a_disk_the_hypervisor_cannot_attach_naming_the_disk(
    host_api: RunningDaemon, host_manifest: dict[str, Any]
) -> None:
    manifest = copy.deepcopy(host_manifest)
    manifest["name"] = manifest["runtime"] = "needs-a-disk"
    manifest["disks"] = [
        {"name": "scratch", "source": "http://127.0.0.1:9/scratch.img", "checksum": "sha256:" + "0" * 64}
    ]
    answer = host_api.request("POST", "/api/v1/plugins", manifest)
    assert answer.status == 422, answer.json()
    assert _refusal(answer) == (
        "manifest.disks[0]",
        "manifest.disks[0]: disk 'scratch' needs the hypervisor capability 'disks', which hypervisor "
        "'test-host-process' lacks (it offers: adopt, test-only); choose another hypervisor or drop it",
    )
    assert host_api.request("GET", "/api/v1/plugins/needs-a-disk").status == 404


def test_patch_refuses_and_keeps_the_version(host_api: RunningDaemon) -> None:
    assert host_api.request("POST", "/api/v1/vms", {"name": "kept", "plugin": "hello-host"}).status == 201
    before = host_api.request("GET", "/api/v1/vms/kept/config").json()["version"]
    answer = host_api.request("PATCH", "/api/v1/vms/kept/config", {"expose": [{"port": 8000}]})
    assert answer.status == 422 and _refusal(answer)[0] == "expose"
    assert host_api.request("GET", "/api/v1/vms/kept/config").json()["version"] == before


def test_system_info_shows_what_each_hypervisor_can_do(host_api: RunningDaemon) -> None:
    info = host_api.request("GET", "/api/v1/system/info").json()
    hypervisors = {h["name"]: h for h in info["extensions"]["hypervisors"]}
    assert hypervisors["test-host-process"]["capabilities"] == ["adopt", "test-only"]
    assert hypervisors["test-host-process"]["plugin"] == "test-host-process"
    modes = {m["name"]: m for m in info["extensions"]["network_modes"]}
    assert modes["none"] == {
        "name": "none",
        "plugin": "core",
        "description": modes["none"]["description"],
        "leases_ip": False,
        "requires": [],
        "publishes_ports": False,
        "honours": [],
    }


def test_a_manifest_installed_disabled_stays_disabled(
    host_api: RunningDaemon, host_manifest: dict[str, Any]
) -> None:
    manifest = {**host_manifest, "name": "later", "runtime": "later", "enabled": False}
    installed = host_api.request("POST", "/api/v1/plugins", manifest)
    assert installed.status == 201 and installed.json()["enabled"] is False
    refused = host_api.request("POST", "/api/v1/vms", {"name": "early", "plugin": "later"})
    assert refused.status == 409 and "is disabled" in refused.json()["error"]["message"]
    assert host_api.request("POST", "/api/v1/plugins/later/enabled", {"enabled": True}).status == 200
    assert host_api.request("POST", "/api/v1/vms", {"name": "early", "plugin": "later"}).status == 201


class BareHypervisor:
    """TEST double: the host-process launcher registered as ``bare-host-process``, declaring no capability."""

    @hookimpl
    def volant_hypervisors(self) -> list[HypervisorDescriptor]:
        """``bare-host-process``."""
        return [
            HypervisorDescriptor(
                "bare-host-process", HostProcessLauncher, "TEST ONLY", capabilities=frozenset()
            )
        ]


def test_a_hypervisor_without_capabilities_is_said_to_offer_none(host_manifest: dict[str, Any]) -> None:
    with host_process_daemon(plugins=[("bare", BareHypervisor())]) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        body = {
            "name": "bare",
            "plugin": "hello-host",
            "hypervisor": "bare-host-process",
            "config": {"rootfs": {"url": "http://127.0.0.1:9/root.img"}},
        }
        answer = api.request("POST", "/api/v1/vms", body)
        assert answer.status == 422, answer.json()
        assert _refusal(answer) == (
            "rootfs",
            "rootfs: a root filesystem image needs the hypervisor capability 'disks', which hypervisor "
            "'bare-host-process' lacks (it offers: none); choose another hypervisor or drop it",
        )


LACKING_HYPERVISOR = "which hypervisor 'test-host-process' lacks (it offers: adopt, test-only)"
#: Fields a plugin installed here honours (the example's device driver, its seed builder) and the
#: host-process hypervisor cannot attach: what is asked, the field named, the whole refusal.
CAPABILITY_REFUSALS = [
    (
        "devices",
        {"devices": {"pci_passthrough": ["0000:01:00.0"]}},
        "devices.pci_passthrough",
        "devices.pci_passthrough: passing PCI devices through needs the hypervisor capability "
        f"'pci-passthrough', {LACKING_HYPERVISOR}; choose another hypervisor or drop it",
    ),
    (
        "cloud-init",
        {"cloud_init": {"seed_mode": "example-seed", "user_data": {"content": "#cloud-config"}}},
        "cloud_init",
        f"cloud_init: a cloud-init seed disk needs the hypervisor capability 'disks', {LACKING_HYPERVISOR}; "
        "choose another hypervisor or drop it",
    ),
]


@pytest.mark.parametrize(
    ("what", "fields", "field", "refusal"), CAPABILITY_REFUSALS, ids=[c[0] for c in CAPABILITY_REFUSALS]
)
def test_a_plugin_honouring_a_field_still_needs_the_hypervisor_to_attach_it(
    host_manifest: dict[str, Any], what: str, fields: dict[str, Any], field: str, refusal: str
) -> None:
    """With the device driver or seed builder installed, a manifest or a VM asking for PCI devices
    or a cloud-init seed is refused all the same when the hypervisor lacks the capability to attach
    them, naming the field and the capability; nothing is installed or created.
    """
    with host_process_daemon(plugins=[("lifecycle-example", example)]) as api:
        manifest = {**copy.deepcopy(host_manifest), "name": "needs-it", "runtime": "needs-it", **fields}
        answer = api.request("POST", "/api/v1/plugins", manifest)
        assert answer.status == 422, answer.json()
        assert _refusal(answer) == (field, refusal)
        assert api.request("GET", "/api/v1/plugins/needs-it").status == 404

        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        body = {"name": "refused", "plugin": "hello-host", "config": fields}
        answer = api.request("POST", "/api/v1/vms", body)
        assert answer.status == 422, answer.json()
        assert _refusal(answer) == (field, refusal)
        assert api.request("GET", "/api/v1/vms").json() == []


def test_an_unknown_network_mode_is_404_naming_the_field(host_api: RunningDaemon) -> None:
    config = {"network": {"mode": "no-such-mode"}}
    answer = host_api.request(
        "POST", "/api/v1/vms", {"name": "lost", "plugin": "hello-host", "config": config}
    )
    assert answer.status == 404
    field, message = _refusal(answer)
    assert field == "network.mode" and message.startswith(
        "unknown network mode 'no-such-mode'; choose one of: "
    )
    assert host_api.request("GET", "/api/v1/vms").json() == []


@pytest.mark.parametrize(
    "devices", [{}, {"pci_passthrough": [], "allowlist": []}], ids=["empty", "empty-lists"]
)
def test_a_devices_section_naming_no_device_asks_for_no_driver(
    host_api: RunningDaemon, devices: dict[str, Any]
) -> None:
    """No device driver is installed here: a VM whose ``devices`` names none is still created."""
    answer = host_api.request(
        "POST", "/api/v1/vms", {"name": "no-devices", "plugin": "hello-host", "config": {"devices": devices}}
    )
    assert answer.status == 201, answer.json()
    assert [vm["name"] for vm in host_api.request("GET", "/api/v1/vms").json()] == ["no-devices"]
