"""``volar vms create`` flags that become the VM's configuration (real volar, live daemon)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from volant_core.guest import file_layer
from volant_core.testing.cli import run_volar
from volant_core.testing.daemon import RunningDaemon


def _config(api: RunningDaemon, name: str) -> dict:
    return api.request("GET", f"/api/v1/vms/{name}/config").json()["config"]


def test_config_file_and_flags_reach_the_configuration(host_api: RunningDaemon, tmp_path: Path) -> None:
    config = tmp_path / "vm.json"
    config.write_text(json.dumps({"restart_policy": {"mode": "on-failure"}, "kernel_cmdline": "from=file"}))
    user_data = tmp_path / "user-data"
    user_data.write_text("#cloud-config\nhostname: flags\n")
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
        "--device",
        "0000:01:00.0",
        "--device",
        "0000:02:00.0",
        "--cloud-init-user-data",
        str(user_data),
        "-q",
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "flags"
    stored = _config(host_api, "flags")
    assert stored["restart_policy"]["mode"] == "on-failure"
    assert stored["kernel_cmdline"] == "from=flag"
    assert stored["devices"]["pci_passthrough"] == ["0000:01:00.0", "0000:02:00.0"]
    assert stored["cloud_init"]["user_data"]["content"] == user_data.read_text().strip()


@pytest.mark.parametrize("medium", ["initramfs", "rootfs"])
def test_boot_image_with_checksum(host_api: RunningDaemon, medium: str) -> None:
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


def test_bad_create_flags(host_api: RunningDaemon, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    invalid = run_volar(host_api.url, "vms", "create", "x", "--plugin", "hello-host", "--config", str(broken))
    assert invalid.returncode == 2 and "not valid JSON" in invalid.stderr
    assert host_api.request("GET", "/api/v1/vms").json() == []
