"""The ``vfio-pci`` driver on the synthetic sysfs tree of volant_vfio.testing (the TEST DOUBLE standing in
for the kernel's PCI files): its checks, binding with ``driver_override``, giving devices back,
claims, settings and host checks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError as PydanticValidationError
from volant_vfio import plugin
from volant_vfio.driver import VfioDriver
from volant_vfio.settings import VfioSettings
from volant_vfio.sysfs import Sysfs
from volant_vfio.testing import (
    BRIDGE,
    GPU,
    GPU_AUDIO,
    NIC,
    NIC_PORT,
    NO_OVERRIDE,
    SPARE,
    SysfsTree,
)

from volant_core.sdk import (
    ConflictError,
    Devices,
    PciDeviceSpec,
    PluginContext,
    PluginError,
    ValidationError,
    VMStatus,
    VMView,
)
from volant_core.testing.contracts import DeviceDriverContract, make_vm_view
from volant_core.testing.plugins import plugin_context

#: Builds the plugin's context (the ``vfio_context`` fixture).
MakeContext = Callable[[Path, SysfsTree, str], PluginContext]
ALLOWED = ",".join([NIC, NIC_PORT, GPU, GPU_AUDIO, SPARE])


@pytest.fixture
def device_driver(tmp_path: Path, sysfs_tree: SysfsTree, vfio_context: MakeContext) -> VfioDriver:
    """The driver as the daemon builds it, allowed every device of the tree but the bridge."""
    return VfioDriver(vfio_context(tmp_path / "state", sysfs_tree, ALLOWED))


@pytest.fixture
def vm(tmp_path: Path) -> VMView:
    """A VM to give devices to."""
    return make_vm_view("gpu-box", tmp_path / "run")


@pytest.fixture
def devices() -> Devices:
    """The NIC, bound to ixgbe on the host."""
    return Devices(pci_passthrough=[NIC])


@pytest.fixture
def bad_devices() -> Devices:
    """Not a PCI address."""
    return Devices(pci_passthrough=["01:00.0"])


class TestVfioContract(DeviceDriverContract):
    """What every device driver must do."""


def test_attach_binds_with_driver_override_and_detach_restores_the_original_driver(
    device_driver: VfioDriver, vm: VMView, sysfs_tree: SysfsTree
) -> None:
    (spec,) = device_driver.attach(vm, Devices(pci_passthrough=[NIC]))
    assert spec == PciDeviceSpec(NIC, sysfs_tree.root / "bus/pci/devices" / NIC, 1)
    assert sysfs_tree.driver_link(NIC) == "../../drivers/vfio-pci"
    assert sysfs_tree.override(NIC) == "vfio-pci"
    assert not (sysfs_tree.sysfs.driver_dir("vfio-pci") / "new_id").exists()  # never every device of the ID
    device_driver.detach(vm)
    assert sysfs_tree.driver_link(NIC) == "../../drivers/ixgbe"
    assert sysfs_tree.override(NIC) == NO_OVERRIDE
    assert device_driver.claims.all() == []


def test_an_unbound_device_is_left_unbound_when_given_back(
    device_driver: VfioDriver, vm: VMView, sysfs_tree: SysfsTree
) -> None:
    device_driver.attach(vm, Devices(pci_passthrough=[SPARE]))
    assert sysfs_tree.driver_link(SPARE) == "../../drivers/vfio-pci"
    device_driver.detach(vm)
    assert sysfs_tree.driver_link(SPARE) is None and sysfs_tree.override(SPARE) == NO_OVERRIDE


def test_a_group_with_a_sibling_on_a_host_driver_is_refused_naming_it(
    device_driver: VfioDriver, vm: VMView, sysfs_tree: SysfsTree
) -> None:
    with pytest.raises(ValidationError) as refused:
        device_driver.validate(vm, Devices(pci_passthrough=[GPU]))
    assert refused.value.field == "devices.pci_passthrough[0]"
    assert GPU_AUDIO in refused.value.message and "snd_hda_intel" in refused.value.message
    with pytest.raises(ValidationError, match=GPU_AUDIO):
        device_driver.attach(vm, Devices(pci_passthrough=[GPU]))
    assert sysfs_tree.driver_link(GPU) == "../../drivers/nouveau"  # nothing was touched
    assert device_driver.claims.all() == []


def test_a_whole_group_passes_and_unbound_siblings_and_bridges_do_not_block(
    device_driver: VfioDriver, vm: VMView, sysfs_tree: SysfsTree
) -> None:
    specs = device_driver.attach(vm, Devices(pci_passthrough=[GPU, GPU_AUDIO]))
    assert [spec.address for spec in specs] == [GPU, GPU_AUDIO]
    assert {sysfs_tree.driver_link(a) for a in (GPU, GPU_AUDIO)} == {"../../drivers/vfio-pci"}
    device_driver.validate(vm, Devices(pci_passthrough=[NIC]))  # NIC_PORT is unbound
    device_driver.validate(vm, Devices(pci_passthrough=[SPARE]))  # BRIDGE is a bridge on pcieport
    device_driver.detach(vm)
    assert sysfs_tree.driver_link(GPU) == "../../drivers/nouveau"
    assert sysfs_tree.driver_link(GPU_AUDIO) == "../../drivers/snd_hda_intel"


def test_with_unbound_siblings_refused_a_group_with_one_is_refused_naming_it(
    vm: VMView, sysfs_tree: SysfsTree, tmp_path: Path
) -> None:
    """``VOLANT_VFIO_UNBOUND_SIBLINGS=refuse``: NIC's sibling NIC_PORT, which no driver holds,
    refuses NIC (naming NIC_PORT) until it is requested too; nothing of the host is touched."""
    allowed = f"{NIC},{NIC_PORT}"
    settings = VfioSettings(sysfs_root=sysfs_tree.root, allowed_devices=allowed, unbound_siblings="refuse")
    strict = VfioDriver(plugin_context("vfio", tmp_path / "state", settings))
    with pytest.raises(ValidationError) as refused:
        strict.attach(vm, Devices(pci_passthrough=[NIC]))
    assert refused.value.field == "devices.pci_passthrough[0]"
    assert NIC_PORT in refused.value.message and "UNBOUND_SIBLINGS" in refused.value.message
    assert sysfs_tree.driver_link(NIC) == "../../drivers/ixgbe" and strict.claims.all() == []
    specs = strict.attach(vm, Devices(pci_passthrough=[NIC, NIC_PORT]))  # the whole group passes
    assert [spec.address for spec in specs] == [NIC, NIC_PORT]
    strict.detach(vm)


def test_a_device_held_by_one_vm_is_refused_to_another_naming_the_holder(
    device_driver: VfioDriver, vm: VMView, sysfs_tree: SysfsTree, tmp_path: Path
) -> None:
    device_driver.attach(vm, Devices(pci_passthrough=[NIC]))
    other = make_vm_view("other", tmp_path / "run")
    for attempt in (device_driver.validate, device_driver.attach):
        with pytest.raises(ConflictError, match=f"{NIC} is attached to vm 'gpu-box'"):
            attempt(other, Devices(pci_passthrough=[NIC]))
    with pytest.raises(ValidationError, match="which vm 'gpu-box' holds"):  # its group's sibling
        device_driver.validate(other, Devices(pci_passthrough=[NIC_PORT]))
    device_driver.detach(other)  # holds nothing: gives back nothing
    assert sysfs_tree.driver_link(NIC) == "../../drivers/vfio-pci"
    device_driver.validate(vm, Devices(pci_passthrough=[NIC]))  # its own claim is no conflict


def test_a_failed_bind_gives_back_what_was_bound_already(
    device_driver: VfioDriver, vm: VMView, sysfs_tree: SysfsTree
) -> None:
    """The NIC is bound, then SPARE fails: the NIC goes back to ixgbe and its claim is released;
    SPARE, which could not be written, keeps its claim (its state is unknown) until it can be.
    """
    override = sysfs_tree.sysfs.device_dir(SPARE) / "driver_override"
    override.unlink()  # the kernel refuses every write to it
    with pytest.raises(FileNotFoundError):
        device_driver.attach(vm, Devices(pci_passthrough=[NIC, SPARE]))
    assert sysfs_tree.driver_link(NIC) == "../../drivers/ixgbe"
    assert [claim.address for claim in device_driver.claims.all()] == [SPARE]
    override.write_text(NO_OVERRIDE + "\n")
    device_driver.detach(vm)
    assert device_driver.claims.all() == [] and sysfs_tree.driver_link(SPARE) is None


def test_without_vfio_pci_loaded_the_launch_fails_saying_what_to_load(
    device_driver: VfioDriver, vm: VMView, sysfs_tree: SysfsTree
) -> None:
    for name in ("bind", "unbind"):
        (sysfs_tree.sysfs.driver_dir("vfio-pci") / name).unlink()
    sysfs_tree.sysfs.driver_dir("vfio-pci").rmdir()
    with pytest.raises(PluginError, match="modprobe vfio-pci"):
        device_driver.attach(vm, Devices(pci_passthrough=[NIC]))
    assert sysfs_tree.driver_link(NIC) == "../../drivers/ixgbe" and device_driver.claims.all() == []


@pytest.mark.parametrize(
    ("devices", "field", "words"),
    [
        (Devices(pci_passthrough=["0000:01:00.0", "0000:01:00.0"]), "devices.pci_passthrough[1]", "twice"),
        (Devices(pci_passthrough=["0000:0A:00.0"]), "devices.pci_passthrough[0]", "lower-case"),
        (Devices(pci_passthrough=[BRIDGE]), "devices.pci_passthrough[0]", "VOLANT_VFIO_ALLOWED_DEVICES"),
        (Devices(pci_passthrough=[NIC], allowlist=["10de:*"]), "devices.pci_passthrough[0]", "8086:10fb"),
        (Devices(pci_passthrough=[NIC], allowlist=["8086"]), "devices.allowlist[0]", "vendor:device"),
    ],
)
def test_refusals_name_the_entry(
    device_driver: VfioDriver, vm: VMView, devices: Devices, field: str, words: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        device_driver.validate(vm, devices)
    assert refused.value.field == field and words in refused.value.message


def test_the_vms_own_id_allowlist_accepts_exact_ids_and_whole_vendors(
    device_driver: VfioDriver, vm: VMView
) -> None:
    device_driver.validate(vm, Devices(pci_passthrough=[NIC], allowlist=["8086:10fb"]))
    device_driver.validate(vm, Devices(pci_passthrough=[NIC], allowlist=["10de:*", "8086:*"]))


def test_devices_missing_or_without_an_iommu_group_are_refused(
    tmp_path: Path, sysfs_tree: SysfsTree, vm: VMView, vfio_context: MakeContext
) -> None:
    sysfs_tree.add_device("0000:04:00.0", group=-1, driver=None)
    driver = VfioDriver(vfio_context(tmp_path / "state", sysfs_tree, "0000:04:00.0,0000:05:00.0"))
    with pytest.raises(ValidationError, match="intel_iommu=on"):
        driver.validate(vm, Devices(pci_passthrough=["0000:04:00.0"]))
    with pytest.raises(ValidationError, match=r"no PCI device 0000:05:00\.0"):
        driver.validate(vm, Devices(pci_passthrough=["0000:05:00.0"]))


def test_claims_are_kept_by_a_driver_built_again(
    tmp_path: Path, sysfs_tree: SysfsTree, device_driver: VfioDriver, vm: VMView, vfio_context: MakeContext
) -> None:
    """A new driver on the same state directory (a restarted daemon) sees the claims and restores
    the driver the device had before the first attach, not vfio-pci.
    """
    device_driver.attach(vm, Devices(pci_passthrough=[NIC]))
    again = VfioDriver(vfio_context(tmp_path / "state", sysfs_tree, ALLOWED))
    with pytest.raises(ConflictError, match="gpu-box"):
        again.validate(make_vm_view("other", tmp_path / "run"), Devices(pci_passthrough=[NIC]))
    again.attach(vm, Devices(pci_passthrough=[NIC]))  # the same VM booting again
    again.detach(vm)
    assert sysfs_tree.driver_link(NIC) == "../../drivers/ixgbe"


def test_settings_refuse_bad_addresses_and_relative_roots() -> None:
    with pytest.raises(PydanticValidationError, match="lower-case hex"):
        VfioSettings(allowed_devices="0000:01:00.0, 1:0.0")
    with pytest.raises(PydanticValidationError, match="absolute"):
        VfioSettings(sysfs_root=Path("sys"))
    assert VfioSettings(allowed_devices=" 0000:01:00.0 ,0000:02:00.0").allowed() == {NIC, GPU}
    assert VfioSettings().allowed() == frozenset()


def test_host_checks(tmp_path: Path, sysfs_tree: SysfsTree, vfio_context: MakeContext) -> None:
    checks = {check.name: check.run for check in plugin.volant_host_checks()}
    context = vfio_context(tmp_path / "state", sysfs_tree, NIC)
    assert {name: run(context).status for name, run in checks.items()} == {
        "vfio-pci": "pass",
        "iommu": "pass",
        "vfio-allowed-devices": "pass",
    }
    missing = vfio_context(tmp_path / "state", sysfs_tree, "0000:09:00.0")
    assert "0000:09:00.0" in checks["vfio-allowed-devices"](missing).detail
    empty = SysfsTree(tmp_path / "empty")
    bare = vfio_context(tmp_path / "state", empty, "")
    assert checks["vfio-pci"](bare).fix == "modprobe vfio-pci"
    assert checks["iommu"](bare).status == "warn"


def test_sysfs_writes_never_create_files(tmp_path: Path) -> None:
    """The production write: ``echo value > file`` on an existing file, never a new one."""
    (tmp_path / "driver_override").write_text("(null)\n")
    sysfs = Sysfs(tmp_path)
    sysfs.write(tmp_path / "driver_override", "vfio-pci")
    assert (tmp_path / "driver_override").read_text() == "vfio-pci\n"
    with pytest.raises(FileNotFoundError):
        sysfs.write(tmp_path / "bind", "0000:01:00.0")
    assert not (tmp_path / "bind").exists()


def test_at_daemon_start_devices_of_vms_that_hold_none_any_more_are_given_back(
    tmp_path: Path, sysfs_tree: SysfsTree, vfio_context: MakeContext
) -> None:
    """A VM deleted or stopped while no daemon ran still had its claim: the next daemon gives the
    device back; a running VM keeps its own.
    """
    context = vfio_context(tmp_path / "state", sysfs_tree, ALLOWED)
    driver = VfioDriver(context)
    running = make_vm_view("running", tmp_path / "run", status=VMStatus.RUNNING)
    gone = make_vm_view("gone", tmp_path / "run")
    stopped = make_vm_view("stopped", tmp_path / "run", status=VMStatus.STOPPED)
    driver.attach(running, Devices(pci_passthrough=[NIC]))
    driver.attach(gone, Devices(pci_passthrough=[GPU, GPU_AUDIO]))
    driver.attach(stopped, Devices(pci_passthrough=[SPARE]))
    try:
        plugin.volant_daemon_started([running, stopped], context)
    finally:
        plugin.volant_daemon_stopping()
    assert [claim.vm for claim in driver.claims.all()] == ["running"]
    assert sysfs_tree.driver_link(NIC) == "../../drivers/vfio-pci"
    assert sysfs_tree.driver_link(GPU) == "../../drivers/nouveau"
    assert sysfs_tree.driver_link(GPU_AUDIO) == "../../drivers/snd_hda_intel"
    assert sysfs_tree.driver_link(SPARE) is None
