"""volar's core commands, and ``volar --help`` once its listing is cached, start without the
daemon's modules or the plugins (issue 15, ADR 39).

What a command imports is checked, never how long it takes (that is ``bench/cli_startup.py``'s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from volant_core.testing.waiting import free_port

#: Top-level packages a core command talking to the API has no use for: the daemon's libraries,
#: the plugins' machinery and the installed plugins, yaml and websockets (used by some commands).
HEAVY = {
    "pydantic",
    "falcon",
    "peewee",
    "pluggy",
    "stevedore",
    "prometheus_client",
    "uvicorn",
    "yaml",
    "websockets",
    "volant_qemu",
    "volant_cloud_hypervisor",
    "volant_vfio",
}
#: Modules of the core that load the daemon or the plugins.
HEAVY_CORE = {"volant_core.plugins", "volant_core.daemon", "volant_core.settings", "volant_core.hookspecs"}

#: Runs volar's entry point with ``sys.argv[1:]`` and writes, at exit, the modules it imported.
PROBE = """
import atexit, json, sys
report, sys.argv = sys.argv[1], ["volar", *sys.argv[2:]]
atexit.register(lambda: open(report, "w").write(json.dumps(sorted(sys.modules))))
from volant_core.cli.volar import main
main()
"""


def imported_by(tmp_path: Path, *args: str) -> set[str]:
    """The modules ``volar ARGS`` imported (it may fail: volantd is not running); its user cache
    directory is ``tmp_path/cache``.
    """
    report = tmp_path / "modules.json"
    subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *args],
        env={
            **os.environ,
            "VOLANT_API": f"http://127.0.0.1:{free_port()}",
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
        },
        capture_output=True,
        timeout=60,
        check=False,
    )
    return set(json.loads(report.read_text()))


@pytest.mark.parametrize(
    "args",
    [
        ("vms", "list"),
        ("vms", "get", "web-1"),
        ("deployments", "list"),
        ("system", "info"),
        ("vms", "--help"),
    ],
)
def test_core_commands_import_neither_the_daemon_nor_the_plugins(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    modules = imported_by(tmp_path, *args)
    assert "volant_core.cli.vms" in modules or args[0] != "vms"  # the probe ran the command
    assert {m for m in modules if m.split(".")[0] in HEAVY} == set()
    assert modules & HEAVY_CORE == set()


def test_help_asks_the_plugins_only_when_its_cached_listing_is_stale(tmp_path: Path) -> None:
    """``volar --help`` builds its listing once (loading the plugins and every core command), then
    lists from the cache without them; a name no core command has still asks the plugins.
    """
    assert {"volant_core.plugins", "volant_core.cli.vms"} <= imported_by(tmp_path, "--help")
    cached = imported_by(tmp_path, "--help")
    assert {m for m in cached if m.split(".")[0] in HEAVY} == set()
    assert cached & HEAVY_CORE == set()
    assert "volant_core.cli.vms" not in cached
    assert "volant_core.plugins" in imported_by(tmp_path, "no-such-command")
