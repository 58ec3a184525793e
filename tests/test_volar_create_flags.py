"""``volar vms create`` flags that become the VM's configuration (real volar, live daemon)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core import hookimpl
from volant_core.guest import file_layer
from volant_core.launch import Capability, HypervisorDescriptor
from volant_core.testing.cli import run_volar
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import HostProcessLauncher, host_process_daemon

#: No device driver installed: --device is refused naming volant-vfio.
pytestmark = pytest.mark.usefixtures("without_vfio")


def _config(api: RunningDaemon, name: str) -> dict:
    return api.request("GET", f"/api/v1/vms/{name}/config").json()["config"]


class DiskClaimingBackend:
    """TEST double: registers ``test-host-process-disks``, the host-process backend declaring the
    ``disks`` capability so that a VM with a root filesystem gets through the create path (its disk
    is not attached: kestrel runs on the host). Only what volar sends and the daemon stores is
    checked with it; the real rootfs boot is tests/e2e/test_rootfs.py's.
    """

    @hookimpl
    def volant_hypervisors(self) -> list[HypervisorDescriptor]:
        """The test backend."""
        return [
            HypervisorDescriptor(
                "test-host-process-disks",
                HostProcessLauncher,
                "TEST ONLY: host processes; claims disks without attaching them",
                capabilities=frozenset({Capability.DISKS}),
            )
        ]


@pytest.fixture
def disks_api(host_manifest: dict[str, Any]) -> Iterator[RunningDaemon]:
    """A daemon on :class:`DiskClaimingBackend` with ``hello-host`` installed."""
    plugins = [("disk-claiming-backend", DiskClaimingBackend())]
    with host_process_daemon(plugins=plugins, hypervisor="test-host-process-disks", stop_timeout=5) as daemon:
        assert daemon.request("POST", "/api/v1/plugins", host_manifest).status == 201
        yield daemon


@pytest.mark.usefixtures("without_cloudinit")
def test_devices_and_cloud_init_without_their_plugins_are_refused(
    host_api: RunningDaemon, tmp_path: Path
) -> None:
    """Nothing accepted and ignored: with no device driver or seed builder installed, the flags that
    need one fail naming the field and the package that would handle it, and no VM is left.
    """
    device = run_volar(
        host_api.url, "vms", "create", "x", "--plugin", "hello-host", "--device", "0000:01:00.0"
    )
    assert device.returncode == 2, device.stderr
    assert "devices.pci_passthrough" in device.stderr and "pip install volant-vfio" in device.stderr
    user_data = tmp_path / "user-data"
    user_data.write_text("#cloud-config\nhostname: flags\n")
    seeded = run_volar(
        host_api.url, "vms", "create", "x", "--plugin", "hello-host", "--cloud-init-user-data", str(user_data)
    )
    assert seeded.returncode == 2, seeded.stderr
    assert "cloud_init.seed_mode" in seeded.stderr and "pip install volant-cloudinit" in seeded.stderr
    assert host_api.request("GET", "/api/v1/vms").json() == []


def iso_file(image: Path, name: str, scratch: Path) -> bytes:
    """The file ``name`` of the ISO 9660 ``image``, read with ``xorriso -osirrox``."""
    out = Path(tempfile.mkdtemp(dir=scratch))
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(image), "-extract", f"/{name}", str(out / name)],
        check=True,
        capture_output=True,
    )
    return (out / name).read_bytes()


def test_cloud_init_documents_reach_the_configuration_and_the_seed_byte_for_byte(
    disks_api: RunningDaemon, tmp_path: Path
) -> None:
    """Document files (flags, ``path`` in ``--config`` and in ``config set``) are read by volar and
    sent exactly as they are (CRLF and blank lines kept); the flags win over the config file.
    """
    user_data = tmp_path / "user-data"
    user_data.write_bytes(b"#cloud-config\r\nhostname: crlf\r\n\r\n")
    meta_data = tmp_path / "meta-data"
    meta_data.write_bytes(b"instance-id: i-1\n  \n")
    network = tmp_path / "network-config"
    network.write_bytes(b"version: 2\n")
    config = tmp_path / "vm.json"
    document = {
        "seed_mode": "vfat",
        "meta_data": {"path": str(meta_data)},
        "network_config": {"content": "x"},
    }
    config.write_text(json.dumps({"cloud_init": document}))
    created = run_volar(
        disks_api.url,
        *("vms", "create", "seeded", "--plugin", "hello-host", "--config", str(config)),
        *("--cloud-init-user-data", str(user_data), "--cloud-init-network-config", str(network)),
        *("--seed-mode", "iso"),
    )
    assert created.returncode == 0, created.stderr
    stored = _config(disks_api, "seeded")["cloud_init"]
    assert stored["seed_mode"] == "iso"
    assert stored["user_data"]["content"] == "#cloud-config\r\nhostname: crlf\r\n\r\n"
    assert stored["meta_data"]["content"] == "instance-id: i-1\n  \n"
    assert stored["network_config"]["content"] == "version: 2\n"

    seed = disks_api.daemon.settings.runtime_dir / "seeded" / "seed" / "seed.iso"
    assert iso_file(seed, "user-data", tmp_path) == user_data.read_bytes()

    changed = tmp_path / "changed"
    changed.write_bytes(b"#!/bin/sh\r\necho changed\r\n")
    patch = tmp_path / "patch.json"
    patch.write_text(json.dumps({"cloud_init": {"seed_mode": "iso", "user_data": {"path": str(changed)}}}))
    patched = run_volar(disks_api.url, "vms", "config", "set", "seeded", "--file", str(patch))
    assert patched.returncode == 0, patched.stderr
    stored = _config(disks_api, "seeded")["cloud_init"]
    assert stored["user_data"]["content"] == "#!/bin/sh\r\necho changed\r\n"
    # The seed is built again at the next boot, from the new configuration.
    assert disks_api.request("POST", "/api/v1/vms/seeded/restart").status == 200
    disks_api.wait_for_status("seeded", {"running"})
    assert iso_file(seed, "user-data", tmp_path) == changed.read_bytes()
    missing = run_volar(
        disks_api.url,
        "vms",
        "create",
        "other",
        "--plugin",
        "hello-host",
        "--cloud-init-meta-data",
        "/nonexistent",
    )
    assert missing.returncode == 2 and "--cloud-init-meta-data" in missing.stderr, missing.stderr


def test_config_file_and_flags_reach_the_configuration(host_api: RunningDaemon, tmp_path: Path) -> None:
    config = tmp_path / "vm.json"
    config.write_text(json.dumps({"restart_policy": {"mode": "on-failure"}, "kernel_cmdline": "from=file"}))
    created = run_volar(
        host_api.url,
        "vms",
        "create",
        "flags",
        "--plugin",
        "hello-host",
        "--config",
        str(config),
        "--kernel-cmdline",
        "from=flag",
        "-q",
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "flags"
    stored = _config(host_api, "flags")
    assert stored["restart_policy"]["mode"] == "on-failure"
    assert stored["kernel_cmdline"] == "from=flag"


@pytest.mark.parametrize("medium", ["initramfs", "rootfs"])
def test_boot_image_with_checksum(disks_api: RunningDaemon, medium: str) -> None:
    host_api = disks_api
    image = host_api.state_dir / "images" / f"app.{medium}"  # where volantd may read images from
    image.write_bytes(file_layer({"/etc/app.conf": b"answer=42\n"}))
    digest = "sha256:" + hashlib.sha256(image.read_bytes()).hexdigest()
    name = f"with-{medium}"
    good = run_volar(
        host_api.url, "vms", "create", name, "--plugin", "hello-host",
        f"--{medium}", str(image), f"--{medium}-checksum", digest,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    stored = _config(host_api, name)[medium]
    assert (stored["url"], stored["checksum"]) == (str(image), digest)

    wrong = run_volar(
        host_api.url, "vms", "create", f"tampered-{medium}", "--plugin", "hello-host",
        f"--{medium}", str(image), f"--{medium}-checksum", "sha256:" + "0" * 64,
    )  # fmt: skip
    assert wrong.returncode == 2 and "checksum mismatch" in wrong.stderr
    assert f"manifest.{medium}.url" in wrong.stderr
    assert host_api.request("GET", f"/api/v1/vms/tampered-{medium}").status == 404

    alone = run_volar(
        host_api.url, "vms", "create", "x", "--plugin", "hello-host",
        f"--{medium}-checksum", "sha256:" + "0" * 64,
    )  # fmt: skip
    assert alone.returncode == 2 and f"--{medium}-checksum needs --{medium}" in alone.stderr


def test_persistent_root_flag_reaches_the_configuration_and_needs_a_root(disks_api: RunningDaemon) -> None:
    image = disks_api.state_dir / "images" / "root.img"  # where volantd may read images from
    image.write_bytes(bytes(1 << 16))
    digest = "sha256:" + hashlib.sha256(image.read_bytes()).hexdigest()
    kept = run_volar(
        disks_api.url, "vms", "create", "kept", "--plugin", "hello-host",
        "--rootfs", str(image), "--rootfs-checksum", digest, "--persistent-root",
    )  # fmt: skip
    assert kept.returncode == 0, kept.stderr
    assert _config(disks_api, "kept")["persistent_root"] is True

    rootless = run_volar(
        disks_api.url, "vms", "create", "rootless", "--plugin", "hello-host", "--persistent-root"
    )
    assert rootless.returncode == 2 and "persistent_root: the VM boots no root filesystem" in rootless.stderr
    assert disks_api.request("GET", "/api/v1/vms/rootless").status == 404


def test_bad_create_flags(host_api: RunningDaemon, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    invalid = run_volar(host_api.url, "vms", "create", "x", "--plugin", "hello-host", "--config", str(broken))
    assert invalid.returncode == 2 and "not valid JSON" in invalid.stderr
    assert host_api.request("GET", "/api/v1/vms").json() == []
