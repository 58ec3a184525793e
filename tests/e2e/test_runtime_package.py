"""A runtime shipped as a pip package, as a user installs it: ``examples/hello-runtime``.

volant-core, volant-qemu and the example are built as wheels and installed into a fresh venv
outside the repository; the package's own tests (the core's runtime contract) pass there; that
venv's volantd lists the runtime with its package, boots it (its
payload is read from inside the installed package, ``package://``) and ``volar vms call`` runs its
action. After ``pip uninstall`` and a restart the runtime is gone from the list; the VM that used
it is still listed, and deleting it works.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from volant_core.guest import GuestArtifacts
from volant_core.testing.daemon import volantd_process
from volant_core.testing.processes import scratch_dir
from volant_core.testing.venvs import Venv, build_wheel, clean_env, make_venv, require_uv
from volant_core.testing.waiting import free_port

require_uv()
pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def volar(venv: Venv, url: str, *args: str) -> str:
    """Run the venv's ``volar --api url ARGS``; its output, once it succeeded."""
    done = venv.run("volar", "--api", url, *args, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def runtimes(venv: Venv, url: str) -> dict[str, str]:
    """The runtimes ``volar plugins list`` shows, with where each comes from."""
    return {
        row["name"]: row["source"] for row in json.loads(volar(venv, url, "plugins", "list", "-o", "json"))
    }


def test_a_pip_installed_runtime_boots_runs_its_action_and_goes_with_its_package(
    core_wheel: Path, volant_guest: GuestArtifacts, tmp_path: Path
) -> None:
    wheels = [build_wheel(REPO / path, tmp_path / path.replace("/", "-")) for path in (
        "hypervisors/volant-qemu", "examples/hello-runtime"
    )]  # fmt: skip
    venv = make_venv(tmp_path / "venv", core_wheel, *wheels, f"pytest=={pytest.__version__}")
    run = tmp_path / "run"
    shutil.copytree(REPO / "examples" / "hello-runtime" / "tests", run / "tests")
    contract = venv.pytest(run, "tests")  # the runtime contract, on the installed package
    assert contract.returncode == 0, contract.stdout + contract.stderr
    port = free_port()
    env = clean_env(
        VOLANT_KERNEL=str(volant_guest.kernel),
        VOLANT_INITRAMFS=str(volant_guest.initramfs),
        VOLANT_QEMU_ACCEL="tcg",
    )
    with scratch_dir("vrp-") as base:
        base.chmod(0o711)  # the VMM user passes it to reach its VM's directory
        state = base / "state"
        state.mkdir()
        with volantd_process(state, port, env=env, binary=venv.volantd) as daemon:
            assert runtimes(venv, daemon.url)["hello-runtime"] == "package:volant-runtime-hello"
            volar(venv, daemon.url, "vms", "create", "web", "--plugin", "hello-runtime")
            answer = volar(venv, daemon.url, "vms", "call", "web", "reverse", "--body", '{"text": "volant"}')
            status, _, body = answer.partition("\n")
            assert status == "HTTP 200" and json.loads(body) == {"reversed": "tnalov"}
        venv.uninstall("volant-runtime-hello")
        with volantd_process(state, port, env=env, binary=venv.volantd) as daemon:
            assert "hello-runtime" not in runtimes(venv, daemon.url)
            listed = json.loads(volar(venv, daemon.url, "vms", "list", "-o", "json"))
            assert [vm["name"] for vm in listed] == ["web"]
            volar(venv, daemon.url, "vms", "delete", "web")
