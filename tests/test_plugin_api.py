"""The plugin API v2 as a plugin package meets it, through a real daemon (host-process backend).

The plugin is ``tests/packages/volant-lifecycle-example``: a network mode, a PCI device driver, a
seed builder, settings and a reconcile hook, whose host resources are files in its own state
directory. It is imported from its source tree here (its installed form is exercised by
tests/test_packaging.py). The hypervisor is a TEST double: the host-process backend declaring
the capabilities those extensions need (it runs kestrel on the host and attaches nothing).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import click
import pytest
from click.testing import CliRunner
from pydantic import BaseModel, Field

from volant_core import hookimpl
from volant_core.cli.volantd import add_plugin_options, plugin_settings
from volant_core.cli.volar import cli as volar_cli
from volant_core.descriptors import LaunchAdditions, SeedBuilderDescriptor
from volant_core.errors import ValidationError
from volant_core.launch import Capability, DiskRole, DiskSpec, HypervisorDescriptor, LaunchSpec, PciDeviceSpec
from volant_core.manifest import CloudInit, Devices
from volant_core.plugin_settings import OTHER_PROGRAMS_VARIABLES, refuse_misspellings
from volant_core.plugins import load_plugins
from volant_core.settings import ENVIRONMENT
from volant_core.testing.contracts import (
    DeviceDriverContract,
    NetworkModeContract,
    SeedBuilderContract,
    make_vm_view,
)
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hooks import HookRecorder
from volant_core.testing.hostvm import HostProcessLauncher, host_process_daemon
from volant_core.testing.plugins import plugin_context
from volant_core.testing.waiting import eventually
from volant_core.vm import VMView

sys.path.insert(0, str(Path(__file__).parent / "packages" / "volant-lifecycle-example"))
from volant_lifecycle_example import plugin as example

from volant_core.context import PluginContext

#: The example plugin is the PCI device driver here, not volant-vfio.
pytestmark = pytest.mark.usefixtures("without_vfio")

PLUGIN = "lifecycle-example"
#: The test hypervisor: capabilities for devices and the seed disk.
HYPERVISOR = "test-host-process-capable"


class RecordingLauncher(HostProcessLauncher):
    """The host-process launcher, keeping every :class:`LaunchSpec` it launches in :attr:`launched`."""

    launched: ClassVar[list[LaunchSpec]] = []

    def launch(self, spec: LaunchSpec) -> Any:
        """Record ``spec`` and launch it."""
        RecordingLauncher.launched.append(spec)
        return super().launch(spec)


class CapableHostProcess:
    """TEST double: the host-process backend declaring disks and PCI passthrough (it attaches neither:
    kestrel runs on the host). It lets the example's device driver and seed builder run end to end.
    """

    @hookimpl
    def volant_hypervisors(self) -> list[HypervisorDescriptor]:
        """``test-host-process-capable``."""
        capabilities = frozenset(
            {Capability.DISKS, Capability.PCI_PASSTHROUGH, Capability.RAW_ARGUMENTS, Capability.ADOPT}
        )
        return [HypervisorDescriptor(HYPERVISOR, RecordingLauncher, "TEST ONLY", capabilities=capabilities)]


class DataDiskAdder:
    """A plugin adding a data disk, a PCI device, a kernel argument, a raw device and a raw argument
    to every launch in ``volant_prepare_launch``.
    """

    @hookimpl
    def volant_prepare_launch(self, spec: LaunchSpec) -> LaunchAdditions:
        """One disk, ``added.img`` in the VM's directory, device ``0000:00:02.0``, ``example.added=1``,
        ``virtio-rng-pci`` and ``-no-user-config``.
        """
        return LaunchAdditions(
            disks=(DiskSpec(spec.vm_dir / "added.img"),),
            pci_devices=(PciDeviceSpec("0000:00:02.0", Path("/sys/bus/pci/devices/0000:00:02.0")),),
            kernel_args=("example.added=1",),
            devices=("virtio-rng-pci",),
            extra_args=("-no-user-config",),
        )


PLUGINS = ((PLUGIN, example), ("capable-host-process", CapableHostProcess()))


@pytest.fixture
def api(host_manifest: dict[str, Any]) -> Iterator[RunningDaemon]:
    """A daemon with the example plugin whose network detach raises."""
    with host_process_daemon(
        plugins=PLUGINS,
        plugin_settings={"VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETACH": "true"},
        hypervisor=HYPERVISOR,
        stop_timeout=5,
    ) as daemon:
        assert daemon.request("POST", "/api/v1/plugins", host_manifest).status == 201
        yield daemon


def state(api: RunningDaemon) -> Path:
    """The example plugin's state directory in ``api``."""
    return api.daemon.plugins.context(PLUGIN).state_dir


def create(api: RunningDaemon, name: str, **config: Any) -> Any:
    """Create VM ``name`` of hello-host with ``config`` and wait until it runs."""
    answer = api.request("POST", "/api/v1/vms", {"name": name, "plugin": "hello-host", "config": config})
    assert answer.status == 201, answer.json()
    return api.wait_for_status(name, {"running"}, timeout=60)


FULL = {
    "network": {"mode": example.MODE},
    "devices": {"pci_passthrough": ["0000:00:01.0"]},
    "cloud_init": {"seed_mode": "example-seed", "user_data": {"content": "#cloud-config\n"}},
}


def test_a_failing_release_leaves_the_vm_stopped_and_the_rest_released(api: RunningDaemon) -> None:
    create(api, "full", **FULL)
    plugin_state = state(api)
    assert (plugin_state / "attached" / "full").exists()
    assert (plugin_state / "claims" / "full").read_text() == "0000:00:01.0\n"
    seed = api.daemon.settings.runtime_dir / "full" / "seed" / "seed.img"
    assert seed.read_text() == "#cloud-config\n"  # byte for byte: documents are never trimmed

    stopped = api.request("POST", "/api/v1/vms/full/stop")
    assert stopped.status == 200 and stopped.json()["status"] == "stopped"
    assert not (plugin_state / "claims" / "full").exists(), "the devices were not released"
    assert not seed.parent.exists(), "the seed was not removed"
    assert (plugin_state / "attached" / "full").exists()  # its detach raised: reported, not hidden
    info = {p["name"]: p for p in api.request("GET", "/api/v1/system/plugins").json()["plugins"]}
    assert info[PLUGIN]["status"] == "degraded"
    assert "example-net cannot detach full" in info[PLUGIN]["error"]
    errors = [e for e in api.daemon.store.events.since(0) if e.type == "PLUGIN_ERROR"]
    assert errors and errors[-1].vm_name == "full"

    assert api.request("DELETE", "/api/v1/vms/full").status == 204
    assert api.request("GET", "/api/v1/vms/full").status == 404
    # Releasing again on delete is harmless: the only failure reported is the plugin's detach.
    failures = [e.payload["message"] for e in api.daemon.store.events.since(0) if e.type == "PLUGIN_ERROR"]
    assert failures and all("detaching it from network mode" in message for message in failures), failures


def test_a_device_release_that_fails_is_recorded_on_the_device_drivers_plugin(api: RunningDaemon) -> None:
    create(api, "held", devices=FULL["devices"])
    claim = state(api) / "claims" / "held"
    claim.unlink()
    (claim / "in-use").mkdir(parents=True)  # the driver's detach cannot remove its claim now

    stopped = api.request("POST", "/api/v1/vms/held/stop")
    assert stopped.status == 200 and stopped.json()["status"] == "stopped"
    info = {p["name"]: p for p in api.request("GET", "/api/v1/system/plugins").json()["plugins"]}
    assert info[PLUGIN]["status"] == "degraded"
    failure = "vm held: releasing its devices failed (IsADirectoryError: "
    assert [e for e in info[PLUGIN]["errors"] if e.startswith(failure)], info


def test_a_crash_releases_through_the_same_path(api: RunningDaemon) -> None:
    vm = create(api, "crashes", **FULL)
    claim = state(api) / "claims" / "crashes"
    assert claim.exists()
    os.kill(vm["pid"], signal.SIGKILL)
    api.wait_for_status("crashes", {"crashed"}, timeout=30)
    eventually(lambda: not claim.exists(), "the crashed VM's devices released")


def test_a_device_claimed_by_one_vm_is_refused_to_another(api: RunningDaemon) -> None:
    create(api, "first", devices=FULL["devices"])
    answer = api.request(
        "POST",
        "/api/v1/vms",
        {"name": "second", "plugin": "hello-host", "config": {"devices": FULL["devices"]}},
    )
    assert answer.status == 422
    assert answer.json()["error"]["details"][0]["field"] == "devices.pci_passthrough[0]"
    assert "claimed by vm first" in answer.json()["error"]["message"]
    assert api.request("GET", "/api/v1/vms/second").status == 404


def test_the_reconcile_hook_sees_the_vms_it_owns_after_a_restart(api: RunningDaemon) -> None:
    create(api, "owned", network={"mode": example.MODE})
    create(api, "other")
    orphan = state(api) / "attached" / "vanished"
    orphan.write_text("left by a VM deleted while volantd was down")

    api.restart()

    lines = [json.loads(line) for line in (state(api) / "reconciled.jsonl").read_text().splitlines()]
    assert lines == [{"owned": []}, {"stopping": True}, {"owned": ["owned"]}]
    assert not orphan.exists(), "the reconcile hook did not clean up"
    assert api.wait_for_status("owned", {"running"})["pid"] is not None  # re-adopted, still running


def test_an_uninstalled_plugin_never_blocks_stop_or_delete(
    api: RunningDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    create(api, "orphaned", network={"mode": example.MODE})
    api.restart(plugins=[p for p in PLUGINS if p[0] != PLUGIN])  # the package was uninstalled

    assert api.wait_for_status("orphaned", {"running"})["status"] == "running"  # still re-adopted
    stopped = api.request("POST", "/api/v1/vms/orphaned/stop")
    assert stopped.status == 200 and stopped.json()["status"] == "stopped"
    errors = [e for e in api.daemon.store.events.since(0) if e.type == "PLUGIN_ERROR"]
    unreleased = [
        e.payload["message"] for e in errors if "unknown network mode 'example-net'" in e.payload["message"]
    ]
    assert unreleased and {e.vm_name for e in errors} == {"orphaned"}
    # No plugin to record the failure on: the daemon's log says it, word for word.
    logged = {r.getMessage() for r in caplog.records if r.levelno == logging.ERROR}
    assert set(unreleased) <= logged, logged
    started = api.request("POST", "/api/v1/vms/orphaned/start")
    assert started.status == 404 and started.json()["error"]["details"][0]["field"] == "network.mode"
    assert api.request("DELETE", "/api/v1/vms/orphaned").status == 204


def test_invalid_plugin_settings_stop_the_daemon_naming_the_variable() -> None:
    with pytest.raises(ValidationError, match="VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETACH"):
        with host_process_daemon(
            plugins=PLUGINS, plugin_settings={"VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETACH": "maybe"}
        ):
            pass
    with pytest.raises(ValidationError) as refused:
        with host_process_daemon(
            plugins=PLUGINS, plugin_settings={"VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETAC": "1"}
        ):
            pass
    assert refused.value.message == (
        "VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETAC: plugin lifecycle-example has no such setting; "
        "its settings: VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETACH"
    )
    assert refused.value.field == "VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETAC"


class TwoSettings(BaseModel):
    """TEST settings: one described with a default, one required."""

    zone: str = Field(default="a", description="the zone VMs are placed in")
    weight: int


class NoSettings(BaseModel):
    """TEST settings: a model without a field."""


class DeclaresSettings:
    """TEST plugin: declares ``model`` as its settings (None: no settings at all), and nothing else."""

    def __init__(self, model: type[BaseModel] | None) -> None:
        self.model = model

    @hookimpl
    def volant_settings(self) -> list[type[BaseModel]]:
        """The model, if any."""
        return [self.model] if self.model is not None else []


@pytest.mark.parametrize(
    ("plugin", "model", "given", "listed"),
    [
        (
            "two-settings",
            TwoSettings,
            ("VOLANT_TWO_SETTINGS_ZONES", "VOLANT_TWO_SETTINGS_WIEGHT"),
            "VOLANT_TWO_SETTINGS_ZONE, VOLANT_TWO_SETTINGS_WEIGHT",
        ),
        ("no-settings", NoSettings, ("VOLANT_NO_SETTINGS_ZONE",), "none"),
        ("no-model", None, ("VOLANT_NO_MODEL_ZONE",), "none"),
    ],
    ids=["two-settings", "none", "no-model"],
)
def test_a_variable_naming_no_setting_stops_the_daemon_listing_the_plugins_settings(
    plugin: str, model: type[BaseModel] | None, given: tuple[str, ...], listed: str
) -> None:
    """The first stray variable (in sorted order) is named, as the field too, with every setting the
    plugin has: what volantd prints when it refuses to start.
    """
    with pytest.raises(ValidationError) as refused:
        with host_process_daemon(
            plugins=[(plugin, DeclaresSettings(model))], plugin_settings=dict.fromkeys(given, "1")
        ):
            pass
    first = min(given)
    assert refused.value.message == f"{first}: plugin {plugin} has no such setting; its settings: {listed}"
    assert refused.value.field == first


def test_a_plugin_named_like_the_start_of_another_leaves_the_others_settings_to_it() -> None:
    """``VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETACH`` is under the prefix of a plugin ``lifecycle`` too: it is
    the setting of ``lifecycle-example`` (the longer prefix), not a stray of ``lifecycle``, whose own
    strays are still refused.
    """
    plugins = (*PLUGINS, ("lifecycle", DeclaresSettings(TwoSettings)))
    given = {"VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETACH": "true", "VOLANT_LIFECYCLE_WEIGHT": "2"}
    with host_process_daemon(plugins=plugins, plugin_settings=given) as api:
        contexts = api.daemon.plugins.contexts
        assert contexts[PLUGIN].options == example.ExampleSettings(fail_detach=True)
        assert contexts["lifecycle"].options == TwoSettings(zone="a", weight=2)
    with pytest.raises(ValidationError) as refused:
        with host_process_daemon(plugins=plugins, plugin_settings={**given, "VOLANT_LIFECYCLE_EXAMPL": "1"}):
            pass
    assert refused.value.message == (
        "VOLANT_LIFECYCLE_EXAMPL: plugin lifecycle has no such setting; "
        "its settings: VOLANT_LIFECYCLE_ZONE, VOLANT_LIFECYCLE_WEIGHT"
    )
    assert refused.value.field == "VOLANT_LIFECYCLE_EXAMPL"


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("VOLANT_API_LISTN", "VOLANT_API_LISTEN"), ("VOLANT_TWO_SETTING_WEIGHT", "VOLANT_TWO_SETTINGS_WEIGHT")],
    ids=["volantd's", "a plugin's"],
)
def test_a_variable_spelled_like_a_setting_stops_the_daemon_naming_the_setting(typo: str, meant: str) -> None:
    """A variable nothing reads, spelled like a setting of volantd or of a loaded plugin, is a typo
    that would leave that setting at its default: refused, naming both.
    """
    with pytest.raises(ValidationError) as refused:
        with host_process_daemon(
            plugins=[("two-settings", DeclaresSettings(TwoSettings))], plugin_settings={typo: "x"}
        ):
            pass
    assert (
        refused.value.message
        == f"{typo}: neither volantd nor a plugin has this setting; did you mean {meant}?"
    )
    assert refused.value.field == typo


def test_variables_of_other_programs_and_unlike_any_setting_are_left_alone() -> None:
    """volar's ``VOLANT_API`` (spelled like ``VOLANT_API_KEY``) and a variable like no setting: the
    daemon starts.
    """
    given = {"VOLANT_API": "http://127.0.0.1:1", "VOLANT_NOTHING_LIKE_IT": "1"}
    with host_process_daemon(plugin_settings=given) as api:
        assert api.request("GET", "/healthz").status == 200


def test_a_variable_of_a_plugin_found_but_not_loaded_is_left_to_it() -> None:
    """``VOLANT_OFF_WEIGHT`` is spelled like a loaded plugin's ``VOLANT_ON_WEIGHT``, but it is under
    the prefix of a plugin that is found (disabled, say): its own, not a misspelling.
    """
    refuse_misspellings(["VOLANT_OFF_WEIGHT"], ["VOLANT_ON_WEIGHT"], ["on", "off"])
    with pytest.raises(ValidationError, match="did you mean VOLANT_ON_WEIGHT"):
        refuse_misspellings(["VOLANT_OFF_WEIGHT"], ["VOLANT_ON_WEIGHT"], ["on"])


def test_every_variable_volar_reads_is_volantds_or_known_as_another_programs() -> None:
    """``volar``'s options read from the environment: each is a setting of volantd or one of
    :data:`OTHER_PROGRAMS_VARIABLES`, so volantd never takes it for a misspelling.
    """
    read = set()
    commands: list[click.Command] = [volar_cli]
    while commands:
        command = commands.pop()
        commands += list(getattr(command, "commands", {}).values())
        for param in command.params:
            envvar = param.envvar or ()
            read.update([envvar] if isinstance(envvar, str) else envvar)
    assert read  # the walk found volar's variables
    assert read <= set(ENVIRONMENT) | OTHER_PROGRAMS_VARIABLES, read - set(ENVIRONMENT)


def test_volantd_help_shows_each_plugin_setting_with_its_description_variable_and_default() -> None:
    """The options ``volantd`` adds for the installed plugins' settings (its ``main`` gives them to
    its commands the same way), as ``volantd --help`` shows them.
    """
    plugins = load_plugins(extra=(*PLUGINS, ("two-settings", DeclaresSettings(TwoSettings))))
    command = click.Command("volantd")
    add_plugin_options([command], plugin_settings(plugins))
    wide = {"terminal_width": 1000, "max_content_width": 1000}  # no line broken inside a name
    shown = " ".join(CliRunner().invoke(command, ["--help"], **wide).output.split())
    for line in (
        "--lifecycle-example-fail-detach VALUE make the network mode's detach raise "
        "(plugin lifecycle-example; env VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETACH; default False)",
        "--two-settings-zone VALUE the zone VMs are placed in "
        "(plugin two-settings; env VOLANT_TWO_SETTINGS_ZONE; default a)",
        "--two-settings-weight VALUE (plugin two-settings; env VOLANT_TWO_SETTINGS_WEIGHT; required)",
    ):
        assert line in shown, shown


def test_the_seed_disk_stays_last_and_read_only_when_a_plugin_adds_disks(
    host_manifest: dict[str, Any],
) -> None:
    """A disk added in ``volant_prepare_launch`` goes before the seed: the seed is attached last."""
    with host_process_daemon(
        plugins=(*PLUGINS, ("disk-adder", DataDiskAdder())), hypervisor=HYPERVISOR, stop_timeout=5
    ) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        RecordingLauncher.launched.clear()
        create(api, "ordered", **FULL)
        (spec,) = RecordingLauncher.launched
        *others, seed = spec.disks
        assert seed.role is DiskRole.SEED and seed.readonly, spec.disks
        assert [disk.path.name for disk in others] == ["added.img"]
        assert [device.address for device in spec.pci_devices] == ["0000:00:01.0", "0000:00:02.0"]
        assert spec.kernel_args[-1] == "example.added=1" and "example.net=on" in spec.kernel_args
        assert (spec.devices, spec.extra_args) == (("virtio-rng-pci",), ("-no-user-config",))


class RecordingSeed:
    """A seed builder that notes the VM and the directory it builds for, and returns its disk writable
    (:class:`DiskSpec`'s default): the core attaches every seed read-only whatever the builder says.
    """

    built: ClassVar[list[tuple[str, Path]]] = []

    def build(self, vm: VMView, cloud_init: CloudInit, directory: Path) -> DiskSpec:
        """Write ``seed.img`` in ``directory``."""
        RecordingSeed.built.append((vm.name, directory))
        seed = directory / "seed.img"
        seed.write_text("seed")
        return DiskSpec(seed)


class RegistersRecordingSeed:
    """Registers :class:`RecordingSeed` as the seed mode ``test-seed``."""

    @hookimpl
    def volant_seed_builders(self) -> list[SeedBuilderDescriptor]:
        """``test-seed``."""
        return [SeedBuilderDescriptor("test-seed", factory=RecordingSeed)]


def test_the_launch_holds_the_vms_size_its_disks_and_a_read_only_seed_built_for_it(
    host_manifest: dict[str, Any],
) -> None:
    """What the hypervisor is asked to launch: the VM's vCPUs, memory and vsock CID, its runtime's
    disk, then the seed built for this VM in its own directory, read-only; a seed directory left
    from an earlier boot is built again, not refused.
    """
    plugins = (*PLUGINS, ("test-seed", RegistersRecordingSeed()))
    with host_process_daemon(plugins=plugins, hypervisor=HYPERVISOR, stop_timeout=5) as api:
        data = api.state_dir / "images" / "data.img"
        data.write_bytes(b"data")
        manifest = {**host_manifest, "disks": [{"name": "data", "source": str(data), "readonly": True}]}
        assert api.request("POST", "/api/v1/plugins", manifest).status == 201
        RecordingLauncher.launched.clear()
        RecordingSeed.built.clear()
        vm = create(
            api, "seeded", resources={"cpu_cores": 2, "memory_mb": 192}, cloud_init={"seed_mode": "test-seed"}
        )
        seed_dir = api.daemon.settings.runtime_dir / "seeded" / "seed"
        (spec,) = RecordingLauncher.launched
        assert (spec.cpu_cores, spec.memory_mb, spec.vsock_cid) == (2, 192, vm["vsock_cid"])
        assert [(disk.path, disk.role, disk.readonly) for disk in spec.disks] == [
            (data, DiskRole.DATA, True),
            (seed_dir / "seed.img", DiskRole.SEED, True),
        ]
        assert RecordingSeed.built == [("seeded", seed_dir)]

        assert api.request("POST", "/api/v1/vms/seeded/stop").status == 200
        assert not seed_dir.exists()
        seed_dir.mkdir()
        (seed_dir / "stale").write_text("left by an earlier boot")
        assert api.request("POST", "/api/v1/vms/seeded/start").status == 200
        api.wait_for_status("seeded", {"running"})
        assert sorted(path.name for path in seed_dir.iterdir()) == ["seed.img"]
        assert RecordingSeed.built == [("seeded", seed_dir)] * 2


class RefusesLaunches:
    """Takes part in every launch: notes the VMs ``volant_release_launch`` releases and, once
    :attr:`refusing`, answers ``volant_prepare_launch`` with the wrong type, so the launch fails
    after every other host resource was acquired.
    """

    def __init__(self) -> None:
        """Not refusing yet."""
        self.refusing = False
        self.released: list[str] = []

    @hookimpl
    def volant_prepare_launch(self) -> str | None:
        """Not :class:`LaunchAdditions` while refusing."""
        return "no additions" if self.refusing else None

    @hookimpl
    def volant_release_launch(self, vm: VMView) -> None:
        """Note ``vm``."""
        self.released.append(vm.name)


def test_a_start_refused_at_the_last_step_gives_back_everything_acquired_for_it(
    host_manifest: dict[str, Any],
) -> None:
    """The network, the seed and the devices acquired for a start that fails are released again, each
    by its owner, ``volant_release_launch`` told which VM it was; nothing is reported as left.
    """
    refuses = RefusesLaunches()
    plugins = (*PLUGINS, ("refuses", refuses))
    with host_process_daemon(plugins=plugins, hypervisor=HYPERVISOR, stop_timeout=5) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        create(api, "undone", **FULL)
        assert api.request("POST", "/api/v1/vms/undone/stop").status == 200
        refuses.refusing = True
        refuses.released.clear()

        answer = api.request("POST", "/api/v1/vms/undone/start")
        assert answer.status == 500
        assert answer.json()["error"]["message"] == (
            "plugin refuses: volant_prepare_launch must return LaunchAdditions or None, got 'no additions'"
        )
        assert api.request("GET", "/api/v1/vms/undone").json()["status"] == "crashed"
        assert refuses.released == ["undone"]
        assert not (state(api) / "attached" / "undone").exists(), "the network was not detached"
        assert not (state(api) / "claims" / "undone").exists(), "the devices were not released"
        assert not (api.daemon.settings.runtime_dir / "undone" / "seed").exists(), "the seed was not removed"
        plugins_now = api.request("GET", "/api/v1/system/plugins").json()["plugins"]
        statuses = {p["name"]: p["status"] for p in plugins_now}
        assert {name: statuses[name] for name in ("core", PLUGIN, "refuses")} == {
            "core": "loaded",
            PLUGIN: "loaded",
            "refuses": "loaded",
        }


def test_a_start_after_the_device_driver_is_gone_is_refused_naming_the_devices(api: RunningDaemon) -> None:
    create(api, "orphan-devices", devices=FULL["devices"])
    assert api.request("POST", "/api/v1/vms/orphan-devices/stop").status == 200
    api.restart(plugins=[p for p in PLUGINS if p[0] != PLUGIN])  # the device driver's package is gone

    answer = api.request("POST", "/api/v1/vms/orphan-devices/start")
    assert answer.status == 422
    error = answer.json()["error"]
    assert [detail["field"] for detail in error["details"] or []] == ["devices.pci_passthrough"]
    assert error["message"] == (
        "devices.pci_passthrough: no device driver for pci devices is installed (pip install volant-vfio)"
    )
    vm = api.request("GET", "/api/v1/vms/orphan-devices").json()
    assert vm["status"] == "crashed"


@pytest.mark.parametrize(
    ("cloud_init", "field", "words"),
    [
        (
            {
                "seed_mode": "example-seed",
                "user_data": {"content": "#cloud-config\nwrite_files: [{path: etc/x}]\n"},
            },
            "cloud_init.user_data.content",
            "write_files[0].path: must be an absolute file path",
        ),
        ({"seed_mode": "floppy"}, "cloud_init.seed_mode", "choose one of: example-seed, iso, vfat"),
        (
            {"seed_mode": "example-seed", "meta_data": {"content": "[1, 2]"}},
            "cloud_init.meta_data.content",
            "must be a YAML mapping, not list",
        ),
        (
            {"seed_mode": "example-seed", "network_config": {"content": "version: 2\nethernets: [eth0]\n"}},
            "cloud_init.network_config.content",
            "ethernets: must be a mapping of interfaces",
        ),
    ],
    ids=[
        "malformed-cloud-config",
        "unknown-seed-mode",
        "meta-data-not-a-mapping",
        "malformed-network-config",
    ],
)
def test_a_seed_that_cannot_be_built_or_applied_is_refused_before_anything_is_stored(
    api: RunningDaemon, cloud_init: dict[str, Any], field: str, words: str
) -> None:
    answer = api.request(
        "POST",
        "/api/v1/vms",
        {"name": "bad-seed", "plugin": "hello-host", "config": {"cloud_init": cloud_init}},
    )
    assert answer.status == 422, answer.json()
    error = answer.json()["error"]
    assert error["details"][0]["field"] == field and words in error["message"], error
    assert api.request("GET", "/api/v1/vms").json() == []


def test_hooks_are_recorded_in_lifecycle_order(api: RunningDaemon) -> None:
    recorder = HookRecorder.attach(api.daemon.plugins)
    create(api, "seen", **FULL)
    assert api.request("DELETE", "/api/v1/vms/seen").status == 204
    order = recorder.hooks(ignore=("volant_event", "volant_allocate_ip"))
    assert order == [
        "volant_vm_validate",
        "volant_prepare_launch",
        "volant_vm_launched",
        "volant_release_launch",
        "volant_vm_stopped",
        "volant_release_launch",
        "volant_vm_deleted",
    ], order


# ------------------------------------------------------------------ the test kit's contract classes


def _context(tmp_path: Path, **settings: str) -> PluginContext:
    return plugin_context(PLUGIN, tmp_path, example.ExampleSettings(**settings))


@pytest.fixture
def vm(tmp_path: Path) -> VMView:
    """A VM as the core hands it to plugins."""
    return make_vm_view("contract", tmp_path / "vm", network_mode=example.MODE)


class TestExampleNetworkMode(NetworkModeContract):
    """The example's network mode honours the network-mode contract."""

    @pytest.fixture
    def network_mode(self, tmp_path: Path) -> Any:
        return example.ExampleNetwork(_context(tmp_path))


class TestExampleDeviceDriver(DeviceDriverContract):
    """The example's device driver honours the device-driver contract."""

    @pytest.fixture
    def device_driver(self, tmp_path: Path) -> Any:
        return example.ExampleDevices(_context(tmp_path))

    @pytest.fixture
    def devices(self) -> Devices:
        return Devices(pci_passthrough=["0000:00:01.0", "0000:00:02.0"])

    @pytest.fixture
    def bad_devices(self) -> Devices:
        return Devices(pci_passthrough=["01:00.0"])


class TestExampleSeedBuilder(SeedBuilderContract):
    """The example's seed builder honours the seed-builder contract."""

    @pytest.fixture
    def seed_builder(self) -> Any:
        return example.ExampleSeed()

    @pytest.fixture
    def cloud_init(self) -> CloudInit:
        return CloudInit(seed_mode="example-seed", user_data={"content": "#cloud-config\n"})  # type: ignore[arg-type]


def test_rollback_to_a_version_nothing_can_honour_any_more_is_refused(api: RunningDaemon) -> None:
    create(api, "rolled", devices=FULL["devices"])
    assert api.request("PATCH", "/api/v1/vms/rolled/config", {"devices": None}).status == 200
    api.restart(plugins=[p for p in PLUGINS if p[0] != PLUGIN])  # the device driver's package is gone
    answer = api.request("POST", "/api/v1/vms/rolled/config/rollback", {"version": 1})
    assert answer.status == 422
    assert answer.json()["error"]["details"][0]["field"] == "devices.pci_passthrough"
    assert api.request("GET", "/api/v1/vms/rolled/config").json()["version"] == 2


def test_a_refused_daemon_leaves_no_state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(ValidationError):
        with host_process_daemon(
            plugins=PLUGINS, plugin_settings={"VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETACH": "x"}
        ):
            pass
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("volant-")] == []


@pytest.mark.parametrize("target", ["twenty-one-characters", "-dash-first", "has space", "vd\u00e9"])
def test_a_disk_target_that_cannot_be_a_serial_is_refused_at_install(
    api: RunningDaemon, host_manifest: dict[str, Any], target: str
) -> None:
    manifest = {**host_manifest, "name": "serials", "runtime": "serials"}
    manifest["disks"] = [{"name": "data", "source": "http://127.0.0.1:9/data.img", "target": target}]
    answer = api.request("POST", "/api/v1/plugins", manifest)
    assert answer.status == 422
    error = answer.json()["error"]
    assert error["details"][0]["field"] == "manifest.disks[0].target"
    assert error["message"] == (
        f"manifest.disks[0].target: {target!r} must be 1-20 letters, digits, '.', '_' or '-' "
        "(the guest sees it as the disk's serial, /dev/disk/by-id/virtio-<target>)"
    )
    assert api.request("GET", "/api/v1/plugins/serials").status == 404


def test_a_twenty_character_disk_target_is_installed(
    api: RunningDaemon, host_manifest: dict[str, Any]
) -> None:
    manifest = {**host_manifest, "name": "serials", "runtime": "serials"}
    manifest["disks"] = [
        {"name": "data", "source": "http://127.0.0.1:9/data.img", "target": "Data_disk.2026-12-03"}
    ]
    assert api.request("POST", "/api/v1/plugins", manifest).status == 201


def test_a_kernel_override_is_the_kernel_the_vm_boots(api: RunningDaemon) -> None:
    """The override is the kernel launched; once its file is gone, a start is refused naming it."""
    kernel = api.daemon.settings.artifact_dirs[-1] / "vmlinuz-custom"
    kernel.parent.mkdir(parents=True, exist_ok=True)
    kernel.write_bytes(b"not a real kernel: the host-process backend boots none")
    RecordingLauncher.launched.clear()
    create(api, "custom-kernel", kernel_override=str(kernel))
    (spec,) = RecordingLauncher.launched
    assert spec.kernel.read_bytes() == kernel.read_bytes()
    assert api.request("POST", "/api/v1/vms/custom-kernel/stop").status == 200
    kernel.unlink()  # create checked it; only a boot after it vanished finds it gone

    answer = api.request("POST", "/api/v1/vms/custom-kernel/start")
    assert answer.status == 422
    error = answer.json()["error"]
    assert [detail["field"] for detail in error["details"] or []] == ["kernel_override"]
    assert error["message"] == f"kernel_override: {kernel}: no such file on the host"
    assert api.request("GET", "/api/v1/vms/custom-kernel").json()["status"] == "crashed"
