"""Contract test classes: a plugin package subclasses one per extension it provides, and pytest runs
the inherited tests against its objects, proving they honour the protocol the core relies on.

Each class names the fixtures a subclass provides (define them as methods of the subclass or in its
``conftest.py``). The core's own packages use them: ``hypervisors/volant-qemu`` subclasses
:class:`HypervisorContract` (booting real guests), and the core tests run the others against a
test plugin and the core's own boot sources. Example::

    class TestMyVmm(HypervisorContract):
        @pytest.fixture
        def launcher(self):
            return MyVmmLauncher(MySettings())

        @pytest.fixture
        def launch_spec(self, volant_guest, tmp_path):
            return ...  # a LaunchSpec booting volant_guest with a healthy workload

        @pytest.fixture
        def broken_spec(self, tmp_path):
            return ...  # a LaunchSpec the VMM refuses (a kernel that is not one)
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
import signal
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from volant_core import builtins
from volant_core.agent_client import AgentClient
from volant_core.artifact_cache import ArtifactCache
from volant_core.descriptors import ArtifactStream, BootSourceDescriptor, NetworkAttachment
from volant_core.errors import LaunchError, ValidationError
from volant_core.launch import DiskSpec, Instance, LaunchSpec, NicSpec, PciDeviceSpec
from volant_core.manifest import CloudInit, Devices
from volant_core.registry import load_manifest
from volant_core.testing.processes import descendants, kill_all, processes_mentioning
from volant_core.vm import VMStatus, VMView


def make_vm_view(name: str, runtime_dir: Path, **fields: Any) -> VMView:
    """A :class:`VMView` as the core hands it to plugins, for contract tests (``fields`` override)."""
    values: dict[str, Any] = {
        "name": name,
        "status": VMStatus.STARTING,
        "runtime": "test",
        "plugin": "test",
        "hypervisor": "test",
        "network_mode": "none",
        "cpu_cores": 1,
        "memory_mb": 256,
        "mac_address": "52:54:00:12:34:56",
        "vsock_cid": 3,
        "runtime_dir": runtime_dir,
    }
    values.update(fields)
    return VMView(**values)


def _require_methods(obj: object, methods: dict[str, tuple[object, ...]]) -> None:
    """Fail naming each method of ``methods`` that ``obj`` lacks or that does not take those parameters."""
    problems = []
    for name, parameters in methods.items():
        method = getattr(obj, name, None)
        if not callable(method):
            problems.append(f"{type(obj).__name__} has no method {name}()")
            continue
        try:
            inspect.signature(method).bind(*parameters)
        except TypeError as err:
            problems.append(
                f"{type(obj).__name__}.{name}{inspect.signature(method)} cannot take {parameters}: {err}"
            )
    assert not problems, "; ".join(problems)


class HypervisorContract:
    """What every hypervisor backend must do, booting real guests.

    Fixtures to provide: ``launcher`` (a new :class:`~volant_core.launch.Launcher`), ``launch_spec``
    (a :class:`~volant_core.launch.LaunchSpec` that boots a guest whose kestrel turns healthy, in a
    ``vm_dir`` of its own) and ``broken_spec`` (one the VMM refuses to boot). Tune ``boot_timeout``
    and ``stop_timeout`` (seconds) for slow hosts.
    """

    boot_timeout = 120.0
    stop_timeout = 60.0

    def test_launcher_has_the_protocol_methods(self, launcher: Any) -> None:
        """``launch(spec)`` and ``adopt(spec, pid)``."""
        _require_methods(launcher, {"launch": ("spec",), "adopt": ("spec", 1)})

    def test_boots_answers_is_adopted_and_stops(self, launcher: Any, launch_spec: LaunchSpec) -> None:
        """A launched guest's kestrel answers over the instance's channel; a new launcher adopts the
        VMM (and not for another VM); stop powers it off, leaves no process, and is idempotent.
        """
        instance = launcher.launch(launch_spec)
        try:
            self._check_instance(instance)
            assert instance.agent_channel is not None, "the instance must offer an agent channel"
            client = AgentClient(instance.agent_channel)
            try:
                assert client.wait_healthy(self.boot_timeout, alive=instance.alive)["status"] == "ok"
            finally:
                client.close()
            elsewhere = dataclasses.replace(launch_spec, vm_dir=launch_spec.vm_dir.parent / "not-this-vm")
            assert launcher.adopt(elsewhere, instance.pid) is None, "adopted the VMM of another VM"
            adopted = launcher.adopt(launch_spec, instance.pid)
            assert adopted is not None, "a running VMM was not adopted"
            assert adopted.pid == instance.pid and adopted.alive()
            status = adopted.stop(self.stop_timeout)
            assert not adopted.alive() and instance.wait(10) is not None
            assert adopted.stop(self.stop_timeout) == status, "stop is not idempotent"
            adopted.kill()
            assert processes_mentioning(str(launch_spec.vm_dir)) == []
            assert launcher.adopt(launch_spec, instance.pid) is None, "adopted a VMM that is gone"
        finally:
            _kill(instance, descendants(instance.pid))

    def test_a_killed_vmm_is_seen_as_ended(self, launcher: Any, launch_spec: LaunchSpec) -> None:
        """SIGKILL of the VMM: ``wait`` reports the signal, ``alive`` turns False, ``kill`` stays safe."""
        instance = launcher.launch(launch_spec)
        started = descendants(instance.pid)
        try:
            os.kill(instance.pid, signal.SIGKILL)
            assert instance.wait(30) == -signal.SIGKILL
            assert not instance.alive()
            instance.kill()
        finally:
            _kill(instance, started)

    def test_a_failed_launch_raises_and_leaves_no_process(
        self, launcher: Any, broken_spec: LaunchSpec
    ) -> None:
        """A spec the VMM refuses raises LaunchError with a message, and nothing keeps running."""
        with pytest.raises(LaunchError) as caught:
            launcher.launch(broken_spec)
        assert caught.value.message
        assert processes_mentioning(str(broken_spec.vm_dir)) == []

    @staticmethod
    def _check_instance(instance: Any) -> None:
        assert isinstance(instance, Instance), f"{type(instance).__name__} lacks Instance members"
        assert isinstance(instance.pid, int) and isinstance(instance.accelerator, str)
        assert instance.alive() and instance.wait(0) is None
        _require_methods(instance, {"wait": (1.0,), "alive": (), "stop": (1.0,), "kill": ()})


class NetworkModeContract:
    """What every network mode must do. Fixtures: ``network_mode`` (the object its factory builds)
    and ``vm`` (a :class:`VMView` for it; :func:`make_vm_view` makes one).
    """

    def test_network_mode_has_the_protocol_methods(self, network_mode: Any) -> None:
        """``attach(vm)`` and ``detach(vm)``."""
        _require_methods(network_mode, {"attach": ("vm",), "detach": ("vm",)})

    def test_attach_then_detach_twice(self, network_mode: Any, vm: VMView) -> None:
        """An attachment of NICs and kernel arguments; detach undoes it and may run again."""
        attachment = network_mode.attach(vm)
        try:
            assert isinstance(attachment, NetworkAttachment)
            for nic in attachment.nics:
                assert isinstance(nic, NicSpec)
                assert nic.host_mac != nic.mac, "the tap's MAC must differ from the guest's"
            for argument in attachment.kernel_args:
                assert argument and argument.isascii() and argument.isprintable() and " " not in argument
        finally:
            network_mode.detach(vm)
        network_mode.detach(vm)

    def test_detach_of_a_vm_never_attached_is_harmless(self, network_mode: Any, vm: VMView) -> None:
        """Release runs on every path, also for a VM whose attach never happened."""
        network_mode.detach(vm)


class DeviceDriverContract:
    """What every device driver must do. Fixtures: ``device_driver``, ``vm``, ``devices`` (a
    :class:`~volant_core.manifest.Devices` it can attach) and ``bad_devices`` (one it must refuse).
    """

    def test_device_driver_has_the_protocol_methods(self, device_driver: Any) -> None:
        """``validate(vm, devices)``, ``attach(vm, devices)`` and ``detach(vm)``."""
        _require_methods(
            device_driver, {"validate": ("vm", "devices"), "attach": ("vm", "devices"), "detach": ("vm",)}
        )

    def test_bad_devices_are_refused_naming_the_field(
        self, device_driver: Any, vm: VMView, bad_devices: Devices
    ) -> None:
        """Validation refuses with a ValidationError whose field is under ``devices``."""
        with pytest.raises(ValidationError) as caught:
            device_driver.validate(vm, bad_devices)
        assert (caught.value.field or "").startswith("devices")

    def test_attach_then_detach_twice(self, device_driver: Any, vm: VMView, devices: Devices) -> None:
        """Attach gives typed PCI specs for every address; detach gives them back, idempotently."""
        device_driver.validate(vm, devices)
        specs = device_driver.attach(vm, devices)
        try:
            assert all(isinstance(spec, PciDeviceSpec) for spec in specs)
            assert [spec.address for spec in specs] == list(devices.pci_passthrough)
        finally:
            device_driver.detach(vm)
        device_driver.detach(vm)


class BootSourceContract:
    """What every boot source must do. Fixtures: ``boot_source`` (its :class:`BootSourceDescriptor`),
    ``artifact_url`` (a URL it serves), ``artifact`` (the bytes it must bring for that URL) and
    ``missing_url`` (a URL of its scheme naming nothing).
    """

    def test_boot_source_has_the_protocol(self, boot_source: BootSourceDescriptor, artifact_url: str) -> None:
        """Schemes as text, the artifact's among them; ``open(url, offset=, deadline=, validators=)``."""
        assert boot_source.schemes and all(isinstance(scheme, str) for scheme in boot_source.schemes)
        assert urllib.parse.urlsplit(artifact_url).scheme in boot_source.schemes
        inspect.signature(boot_source.open).bind(artifact_url, offset=0, deadline=0.0, validators={})

    def test_opens_the_artifact_whole(
        self, boot_source: BootSourceDescriptor, artifact_url: str, artifact: bytes
    ) -> None:
        """From offset 0: every byte, and the size when it says one."""
        stream = _open(boot_source, artifact_url, 0)
        assert stream.offset == 0 and stream.size in (None, len(artifact))
        assert _read(stream) == artifact

    def test_resumes_at_the_offset_or_starts_over(
        self, boot_source: BootSourceDescriptor, artifact_url: str, artifact: bytes
    ) -> None:
        """Asked for byte ``n`` on: the rest from ``n`` (``offset == n``), or all of it (``offset == 0``)."""
        middle = len(artifact) // 2
        stream = _open(boot_source, artifact_url, middle)
        assert stream.offset in (0, middle)
        assert _read(stream) == artifact[stream.offset :]

    def test_a_missing_artifact_is_refused_naming_the_url(
        self, boot_source: BootSourceDescriptor, missing_url: str
    ) -> None:
        """ValidationError whose message names the URL."""
        with pytest.raises(ValidationError) as refused:
            _read(_open(boot_source, missing_url, 0))
        assert missing_url in refused.value.message

    def test_the_core_verifies_and_caches_what_it_reads(
        self, boot_source: BootSourceDescriptor, artifact_url: str, artifact: bytes, tmp_path: Path
    ) -> None:
        """Through the core's cache: stored whole with its checksum; a wrong checksum is refused."""
        cache = ArtifactCache(tmp_path / "cache")
        checksum = "sha256:" + hashlib.sha256(artifact).hexdigest()
        deadline = time.monotonic() + 60
        assert (
            cache.fetch(artifact_url, checksum, boot_source.open, deadline=deadline).read_bytes() == artifact
        )
        wrong = "sha256:" + hashlib.sha256(artifact + b"x").hexdigest()
        with pytest.raises(ValidationError, match="checksum mismatch"):
            cache.fetch(artifact_url, wrong, boot_source.open, deadline=deadline)


class RuntimeContract:
    """What every runtime package must hold. Fixture: ``runtime_manifests``, what its
    ``volant_runtime_manifests`` returns.
    """

    def test_each_manifest_is_valid(self, runtime_manifests: list[Any]) -> None:
        """Every item is a manifest volantd accepts (a ``Path`` to JSON, a dict or a ``Manifest``)."""
        assert runtime_manifests, "a runtime package registers at least one manifest"
        for item in runtime_manifests:
            load_manifest(item)

    def test_artifacts_shipped_in_the_package_are_there_and_match(
        self, runtime_manifests: list[Any], tmp_path: Path
    ) -> None:
        """Each ``package://`` artifact is a file the installed distribution lists, matching its checksum."""
        (package,) = [s for s in builtins.volant_boot_sources() if s.name == "package"]
        cache = ArtifactCache(tmp_path / "cache")
        for item in runtime_manifests:
            manifest = load_manifest(item)
            media = [manifest.initramfs, manifest.rootfs]
            for ref in [m for m in media if m is not None]:
                if ref.url.startswith("package://"):
                    assert ref.checksum, f"{ref.url}: give the artifact a checksum"
                    cache.fetch(ref.url, ref.checksum, package.open, deadline=time.monotonic() + 60)


def _open(source: BootSourceDescriptor, url: str, offset: int) -> ArtifactStream:
    return source.open(url, offset=offset, deadline=time.monotonic() + 60, validators={})


def _read(stream: ArtifactStream) -> bytes:
    with stream.body as body:
        return body.read()


class SeedBuilderContract:
    """What every seed builder must do. Fixtures: ``seed_builder``, ``vm`` and ``cloud_init`` (a
    :class:`~volant_core.manifest.CloudInit` to build).
    """

    def test_seed_builder_has_the_protocol_methods(self, seed_builder: Any) -> None:
        """``build(vm, cloud_init, directory)``."""
        _require_methods(seed_builder, {"build": ("vm", "cloud_init", Path("."))})

    def test_builds_a_disk_inside_the_given_directory(
        self, seed_builder: Any, vm: VMView, cloud_init: CloudInit, tmp_path: Path
    ) -> None:
        """The seed is a file under the VM's seed directory (removed with it), described as a disk."""
        directory = tmp_path / "seed"
        directory.mkdir()
        disk = seed_builder.build(vm, cloud_init, directory)
        assert isinstance(disk, DiskSpec)
        assert disk.path.is_file() and disk.path.resolve().is_relative_to(directory.resolve())


def _kill(instance: Any, started: list[int]) -> None:
    """Kill the VMM of ``instance``, then the processes it had ``started``: a guest's processes end
    with its VMM, but those of a stand-in that runs the guest's agent on the host would not.
    """
    instance.kill()
    kill_all(started)
