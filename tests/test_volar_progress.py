"""Progress as a person at a terminal sees it, and as scripts never see it: the real ``volar`` with
stderr on a pseudo-terminal, then on a pipe.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from volant_core.guest import GuestArtifacts
from volant_core.testing.cli import VOLAR, run_on_terminal, run_volar
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import host_process_daemon

#: What a terminal shows last once a spinner line is gone: carriage return, erase to the end of line.
ERASED = "\r\x1b[K"


def spinner_states(shown: str, name: str) -> list[str]:
    """The VM states the spinner line of ``name`` showed, in order."""
    return re.findall(rf"[|/\\-] vm {re.escape(name)}: (\w+) \(\d+s\)", shown)


def test_waiting_for_a_boot_spins_on_a_terminal_only(host_api: RunningDaemon) -> None:
    """create, start and restart wait (one shared loop) with a spinner showing the VM's state on a
    terminal, erased afterwards; through a pipe stderr stays empty and stdout is the same.
    """
    shown = run_volar(
        host_api.url, "vms", "create", "tty", "--plugin", "hello-host", "-o", "json", terminal=True
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "running"
    assert spinner_states(shown.stderr, "tty")[-1] == "running"
    assert shown.stderr.endswith(ERASED)

    piped = run_volar(host_api.url, "vms", "create", "pipe", "--plugin", "hello-host", "-o", "json")
    assert piped.returncode == 0 and piped.stderr == ""
    assert json.loads(piped.stdout)["status"] == "running"

    for name in ("tty", "pipe"):
        assert run_volar(host_api.url, "vms", "stop", name).returncode == 0
    for verb in ("start", "restart"):
        again = run_volar(host_api.url, "vms", verb, "tty", "-o", "json", terminal=True)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["status"] == "running"
        assert spinner_states(again.stderr, "tty")[-1] == "running" and again.stderr.endswith(ERASED)

        quiet = run_volar(host_api.url, "vms", verb, "pipe", "-o", "json")
        assert quiet.returncode == 0 and quiet.stderr == ""
        assert json.loads(quiet.stdout)["status"] == "running"

    names = run_volar(host_api.url, "vms", "create", "tty-q", "--plugin", "hello-host", "-q", terminal=True)
    assert names.stdout == "tty-q\n"


def test_a_create_ending_crashed_exits_1_with_the_reason(host_manifest: dict[str, Any]) -> None:
    """A VM whose health check never passes ends ``crashed``: volar says why on stderr and exits 1."""
    doomed = copy.deepcopy(host_manifest)
    doomed["name"] = doomed["runtime"] = "doomed"
    doomed["workload"]["base_url"] = "http://127.0.0.1:9"  # its health is checked where nothing listens
    doomed["health_check"] = {"endpoint": "/healthz", "timeout_ms": 500}
    with host_process_daemon(boot_timeout=3) as api:
        assert api.request("POST", "/api/v1/plugins", doomed).status == 201

        piped = run_volar(api.url, "vms", "create", "d-1", "--plugin", "doomed")
        assert piped.returncode == 1 and piped.stdout == ""
        assert piped.stderr.startswith("Error: vm d-1 is crashed: guest agent never became healthy")

        shown = run_volar(api.url, "vms", "create", "d-2", "--plugin", "doomed", terminal=True)
        assert shown.returncode == 1 and shown.stdout == ""
        assert spinner_states(shown.stderr, "d-2")[-1] == "crashed"
        after_the_spinner = shown.stderr.rsplit(ERASED, 1)[-1]
        assert after_the_spinner.startswith("Error: vm d-2 is crashed: guest agent never became healthy")


@pytest.mark.usefixtures("apt_download")
@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "pipe"])
def test_image_build_draws_bars_on_a_terminal_only(
    volant_guest: GuestArtifacts, tmp_path: Path, terminal: bool
) -> None:
    """A fresh build (the kernel package at hand, busybox-static downloaded by apt) shows a bar per
    download, unpacking and the initramfs writing on a terminal; through a pipe only the step lines.
    """
    debs = tmp_path / "debs"
    debs.mkdir()
    for kernel_deb in (volant_guest.kernel.parent.parent / "debs").glob("linux-image-*.deb"):
        shutil.copy(kernel_deb, debs)
    argv = [str(VOLAR), "image", "build", "--cache-dir", str(tmp_path)]
    if terminal:
        built = run_on_terminal(argv, timeout=600)
    else:
        built = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stderr
    kernel_word, kernel, initramfs_word, initramfs = built.stdout.split()
    assert (kernel_word, initramfs_word) == ("kernel", "initramfs")
    assert Path(kernel).parent.parent == tmp_path and Path(initramfs).is_file()
    bars = re.findall(r"(download|extract|write) ([\w.-]+) +\[#+\] +100%", built.stderr)
    if terminal:
        assert ("download", "busybox-static") in bars and ("write", "initramfs") in bars
        extracted = [name for verb, name in bars if verb == "extract"]
        assert "busybox-static" in extracted and any(n.startswith("linux-image-") for n in extracted)
    else:
        assert bars == []
        assert all(line.startswith("  ") for line in built.stderr.splitlines()), built.stderr
