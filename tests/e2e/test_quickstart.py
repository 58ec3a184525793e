"""From wheels in a fresh venv outside the repository, ``volar quickstart`` boots a VM that answers.

volant-core and volant-qemu are built as wheels from this checkout and installed into a new venv
(nothing of the checkout is importable there). ``volar quickstart`` then starts volantd, which
builds the guest image on first use from Debian packages (the session's downloaded ``.deb`` files
are copied into its cache first, to spare the network), installs the example runtime shipped in
volant-core, boots the VM and prints the workload's answer fetched through kestrel.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from volant_core.testing.processes import scratch_dir
from volant_core.testing.venvs import build_wheel, make_venv, require_uv
from volant_core.testing.waiting import eventually, free_port

require_uv()
pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def test_quickstart_from_wheels_boots_a_vm_that_answers(core_wheel: Path, tmp_path: Path) -> None:
    qemu_wheel = build_wheel(REPO / "hypervisors" / "volant-qemu", tmp_path / "qemu-wheel")
    venv = make_venv(tmp_path / "venv", core_wheel, qemu_wheel)
    api = f"http://127.0.0.1:{free_port()}"
    with scratch_dir("vqs-") as base:
        base.chmod(0o711)  # the VMM user passes it to reach its VM's directory
        state = base / "state"
        debs = Path(os.environ.get("VOLANT_TEST_CACHE", REPO / ".cache" / "guest")) / "debs"
        if debs.is_dir():
            shutil.copytree(debs, state / "cache" / "guest" / "debs")
        env = {"VOLANT_STATE_DIR": str(state), "VOLANT_QEMU_ACCEL": "tcg"}
        try:
            first = venv.run("volar", "--api", api, "quickstart", timeout=900, **env)
            assert first.returncode == 0, first.stdout + first.stderr
            assert json.loads(first.stdout)["message"] == "hello from a Volant microVM"

            again = venv.run("volar", "--api", api, "quickstart", timeout=120, **env)
            assert again.returncode == 0 and "starting volantd" not in again.stderr, again.stderr
            listed = venv.run("volar", "--api", api, "vms", "list", "--output", "json", **env)
            assert [vm["name"] for vm in json.loads(listed.stdout)] == ["demo"]
            deleted = venv.run("volar", "--api", api, "vms", "delete", "demo", timeout=120, **env)
            assert deleted.returncode == 0, deleted.stderr
        finally:
            pid = int((state / "volantd.pid").read_text())
            os.kill(pid, signal.SIGTERM)
            eventually(lambda: not Path(f"/proc/{pid}").exists(), "volantd to exit", timeout=60)
