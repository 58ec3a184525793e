"""Plugin discovery as users meet it: real virtual environments, real installs, real processes.

Each venv gets volant-core as a wheel built from this checkout (never the
editable development install), then plugin distributions are installed and
uninstalled with ``uv pip`` and ``volantd`` is run from the venv's own
``bin``. The fixture plugins (those that fail on purpose, and one adding a ``volar``
command) live in ``tests/packages/``.
"""

from __future__ import annotations

import json
import os
import signal
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core.testing.daemon import volantd_process
from volant_core.testing.processes import processes_mentioning, scratch_dir
from volant_core.testing.venvs import Venv, clean_env, make_venv, require_uv
from volant_core.testing.waiting import free_port

require_uv()

REPO = Path(__file__).resolve().parents[1]
PACKAGES = Path(__file__).resolve().parent / "packages"
QEMU_PACKAGE = REPO / "hypervisors" / "volant-qemu"

#: The plugins of ``tests/packages``: entry-point name -> (source tree, words of the expected error).
BROKEN_PLUGINS = {
    "broken": (PACKAGES / "volant-broken-example", "ImportError: volant-broken-example fails to import"),
    "misspelled": (PACKAGES / "volant-misspelled-example", "unknown hook 'volant_hypervisor'"),
}
#: The plugins of ``tests/packages`` extending ``volar``: one adds ``volar hello``, one raises instead.
COMMAND_PLUGINS = {
    "hello-command": PACKAGES / "volant-command-example",
    "failing-command": PACKAGES / "volant-failing-command-example",
}
#: The plugin of ``tests/packages`` built on the v2 API (network mode, device driver, seed builder, settings).
LIFECYCLE_PLUGIN = PACKAGES / "volant-lifecycle-example"
#: Seconds a started daemon has to answer ``/healthz``, then to exit after SIGTERM.
DAEMON_DEADLINE = 30.0

#: Run in a venv's Python: load plugins as volantd does and report what got imported.
PROBE = """
import json, sys
from volant_core.plugins import load_plugins
plugins = load_plugins()
print(json.dumps({
    "plugins": {name: info.status for name, info in plugins.info.items()},
    "hypervisors": plugins.registries.hypervisors.names(),
    "imported": sorted(m for m in sys.modules if m.split(".")[0] == "volant_qemu"),
}))
"""


def commands_listed(help_text: str) -> set[str]:
    """The command names of the ``Commands:`` section of ``volar --help``."""
    section = help_text.split("Commands:\n")[1]
    return {line.split()[0] for line in section.splitlines() if line.startswith("  ") and line.split()}


def volar_commands(venv: Venv, **env: str) -> set[str]:
    """What the venv's ``volar --help`` (which must exit 0, warning of nothing) lists."""
    done = venv.run("volar", "--help", **env)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return commands_listed(done.stdout)


def completed_commands(venv: Venv, start: str) -> set[str]:
    """The command names bash completion offers for ``volar START<TAB>``."""
    done = venv.run("volar", _VOLAR_COMPLETE="bash_complete", COMP_WORDS=f"volar {start}", COMP_CWORD="1")
    assert done.returncode == 0, done.stderr
    return {line.partition(",")[2] for line in done.stdout.splitlines() if line}


def listing_cache(venv: Venv) -> Path:
    """The one file where the venv's volar caches its command listing."""
    (path,) = (venv.user_cache / "volant" / "volar").glob("commands-*.json")
    return path


def list_plugins(venv: Venv, **env: str) -> dict[str, dict[str, str]]:
    """Run the venv's ``volantd --list-plugins`` (which must exit 0) and parse its table by plugin name."""
    done = venv.run("volantd", "--list-plugins", **env)
    assert done.returncode == 0, f"volantd --list-plugins exited {done.returncode}:\n{done.stderr}"
    return parse_table(done.stdout)


def probe(venv: Venv, **env: str) -> dict[str, Any]:
    """Run :data:`PROBE` in the venv's Python and return what it printed."""
    done = venv.run("python", "-c", PROBE, **env)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def project_metadata(source: Path) -> tuple[str, str]:
    """The ``[project]`` name and version of a source tree, as the installed distribution reports them."""
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    return str(project["name"]), str(project["version"])


def parse_table(text: str) -> dict[str, dict[str, str]]:
    """Rows of an aligned table (headers start each column) keyed by their first column."""
    header, *lines = text.splitlines()
    names = header.split()
    starts = [header.index(name) for name in names]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    rows = [
        {name: line[start:end].strip() for name, (start, end) in zip(names, bounds, strict=True)}
        for line in lines
    ]
    return {row[names[0]]: row for row in rows}


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory, core_wheel: Path) -> Venv:
    """A venv holding volant-core and no plugin; tests that add one must remove it again."""
    return make_venv(tmp_path_factory.mktemp("core-venv") / "venv", core_wheel)


@pytest.fixture(scope="module")
def plugins_venv(tmp_path_factory: pytest.TempPathFactory, core_wheel: Path) -> Venv:
    """A venv holding volant-core, volant-qemu and both broken fixture plugins."""
    return make_venv(
        tmp_path_factory.mktemp("plugins-venv") / "venv",
        core_wheel,
        QEMU_PACKAGE,
        *(source for source, _ in BROKEN_PLUGINS.values()),
    )


@pytest.fixture
def daemon_state_dir() -> Iterator[Path]:
    """A short state directory (socket paths must stay short); removed, with any process naming it."""
    with scratch_dir("volant-pkg-") as state:
        yield state


def test_core_alone_has_only_the_core_plugin(core_venv: Venv) -> None:
    """A bare install of volant-core lists its built-in plugin and nothing else."""
    plugins = list_plugins(core_venv)
    assert set(plugins) == {"core"}
    assert plugins["core"]["STATUS"] == "loaded"
    assert plugins["core"]["DISTRIBUTION"] == "volant-core"


def test_installing_a_plugin_makes_it_appear_and_uninstalling_removes_it(core_venv: Venv) -> None:
    """volant-qemu is found as soon as it is installed and forgotten once uninstalled."""
    distribution, version = project_metadata(QEMU_PACKAGE)
    core_venv.install(QEMU_PACKAGE)
    try:
        plugins = list_plugins(core_venv)
        assert plugins["qemu"]["STATUS"] == "loaded", plugins["qemu"]
        assert (plugins["qemu"]["DISTRIBUTION"], plugins["qemu"]["VERSION"]) == (distribution, version)
        assert plugins["qemu"]["ERROR"] == ""
    finally:
        core_venv.uninstall("volant-qemu")
    assert set(list_plugins(core_venv)) == {"core"}


def test_broken_plugins_are_listed_as_failed(plugins_venv: Venv) -> None:
    """A plugin that cannot import and one with a misspelled hook are reported, and nothing else breaks."""
    plugins = list_plugins(plugins_venv)
    for name, (source, error) in BROKEN_PLUGINS.items():
        row = plugins[name]
        assert (row["STATUS"], row["DISTRIBUTION"], row["VERSION"]) == ("failed", *project_metadata(source))
        assert error in row["ERROR"]
    assert plugins["qemu"]["STATUS"] == "loaded"
    assert plugins["core"]["STATUS"] == "loaded"


def test_daemon_serves_and_reports_broken_plugins(plugins_venv: Venv, daemon_state_dir: Path) -> None:
    """The real volantd starts despite broken plugins, reports them over the API and exits 0 on SIGTERM."""
    with volantd_process(
        daemon_state_dir, free_port(), env=clean_env(), binary=plugins_venv.volantd
    ) as daemon:
        api = daemon.client(timeout=10)
        reported = {p["name"]: p for p in api.json("GET", "/api/v1/system/plugins")["plugins"]}
        for name, (source, error) in BROKEN_PLUGINS.items():
            plugin = reported[name]
            assert (plugin["status"], plugin["distribution"], plugin["version"]) == (
                "failed",
                *project_metadata(source),
            )
            assert error in plugin["error"]
        assert reported["qemu"]["status"] == "loaded"
        assert api.json("GET", "/healthz") == {"status": "ok"}

        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(timeout=DAEMON_DEADLINE) == 0
    assert processes_mentioning(str(daemon_state_dir)) == []


def test_disabled_plugin_is_listed_but_never_imported(plugins_venv: Venv) -> None:
    """``VOLANT_DISABLE_PLUGINS=qemu`` shows qemu as disabled and keeps its package out of the process."""
    assert list_plugins(plugins_venv, VOLANT_DISABLE_PLUGINS="qemu")["qemu"]["STATUS"] == "disabled"

    enabled = probe(plugins_venv)
    assert enabled["plugins"]["qemu"] == "loaded"
    assert "volant_qemu" in enabled["imported"]  # so the probe would see an import

    disabled = probe(plugins_venv, VOLANT_DISABLE_PLUGINS="qemu")
    assert disabled["plugins"]["qemu"] == "disabled"
    assert disabled["imported"] == []
    assert "qemu" not in disabled["hypervisors"]


def test_a_plugin_adds_a_volar_command_and_a_failing_one_is_skipped(core_venv: Venv) -> None:
    """An installed plugin's command is listed in ``volar --help`` and runs with the global options;
    a plugin whose ``volant_register_commands`` raises is named on stderr and every command still works.
    """
    core_venv.install(*COMMAND_PLUGINS.values())
    try:
        failing, _ = project_metadata(COMMAND_PLUGINS["failing-command"])
        warning = (
            f"warning: plugin failing-command ({failing}): volant_register_commands raised RuntimeError: "
            "volant-failing-command-example cannot add its command (test fixture)\n"
        )
        for _ in ("built", "cached"):  # the second listing comes from the cache, warning included
            listed = core_venv.volar("--help")
            assert listed.returncode == 0 and listed.stderr == warning
            assert {"hello", "vms", "plugins", "image"} <= commands_listed(listed.stdout)

        greeted = core_venv.volar("--api", "http://volantd.example:7777", "hello", "Ada")
        assert greeted.returncode == 0, greeted.stderr
        assert greeted.stdout == "hello Ada, from a plugin command (volantd at http://volantd.example:7777)\n"
        assert greeted.stderr == warning

        core = core_venv.volar("completion", "bash")
        assert core.returncode == 0 and "_VOLAR_COMPLETE" in core.stdout
    finally:
        core_venv.uninstall(*(project_metadata(source)[0] for source in COMMAND_PLUGINS.values()))
    unplugged = core_venv.volar("hello")
    assert unplugged.returncode == 2 and "No such command 'hello'" in unplugged.stderr


def test_volar_help_lists_a_command_plugin_from_its_install_to_its_uninstall(core_venv: Venv) -> None:
    """``volar --help`` and shell completion list commands from a cache, yet a plugin's command shows
    on the very next call after its install, and is gone on the very next call after its uninstall;
    disabling the plugin (``VOLANT_DISABLE_PLUGINS``) hides it at once too.
    """
    hello = COMMAND_PLUGINS["hello-command"]
    before = volar_commands(core_venv)
    assert "hello" not in before and {"vms", "plugins"} <= before
    assert listing_cache(core_venv).is_file()  # so what follows is read against a cache
    core_venv.install(hello)
    try:
        assert volar_commands(core_venv) == {*before, "hello"}
        assert volar_commands(core_venv) == {*before, "hello"}
        assert completed_commands(core_venv, "he") == {"hello"}
        assert volar_commands(core_venv, VOLANT_DISABLE_PLUGINS="hello-command") == before
        assert volar_commands(core_venv) == {*before, "hello"}
    finally:
        core_venv.uninstall(project_metadata(hello)[0])
    assert completed_commands(core_venv, "he") == set()
    assert volar_commands(core_venv) == before


def test_a_bad_listing_cache_is_ignored_and_rewritten(core_venv: Venv) -> None:
    """A cache file that is corrupt, of another format, not a file, another user's, or lists a
    command that does not exist never breaks ``volar``: the first four are ignored (and rewritten);
    the listed command is text only, running it finds no such command.
    """
    for stale in (core_venv.user_cache / "volant" / "volar").glob("commands-*.json"):
        stale.unlink()
    fresh = core_venv.volar("--help")
    assert fresh.returncode == 0, fresh.stderr
    cache = listing_cache(core_venv)
    assert core_venv.volar("--help").stdout == fresh.stdout  # listed from the cache, word for word
    valid = json.loads(cache.read_text())

    for bad in ("{not json", json.dumps({**valid, "format": "volar-commands/0"}), "\x00" * 10):
        cache.write_text(bad)
        again = core_venv.volar("--help")
        assert (again.returncode, again.stdout, again.stderr) == (0, fresh.stdout, "")
        assert json.loads(cache.read_text()) == valid
    cache.unlink()
    cache.mkdir()
    try:
        again = core_venv.volar("--help")
        assert (again.returncode, again.stdout, again.stderr) == (0, fresh.stdout, "")
    finally:
        cache.rmdir()

    summary = {"help": "Not a real command.", "short_help": None, "hidden": False, "deprecated": False}
    cache.write_text(json.dumps({**valid, "commands": {**valid["commands"], "forged": summary}}))
    if os.geteuid() == 0:  # another user's file (only root can give it away) is not read
        os.chown(cache, 65534, 65534)
        assert "forged" not in volar_commands(core_venv)
        assert json.loads(cache.read_text()) == valid and cache.stat().st_uid == 0
        cache.write_text(json.dumps({**valid, "commands": {**valid["commands"], "forged": summary}}))
    assert "forged" in volar_commands(core_venv)
    forged = core_venv.volar("forged")
    assert forged.returncode == 2 and "No such command 'forged'" in forged.stderr


def test_volar_help_works_when_its_cache_cannot_be_written(core_venv: Venv, tmp_path: Path) -> None:
    """With a cache directory that cannot be made (a file stands where it should be: the tests run
    as root, for whom permission bits do not stop a write), ``volar --help`` still lists every
    command, plugins' included, each time.
    """
    blocked = tmp_path / "cache"
    blocked.mkdir()
    (blocked / "volant").write_text("not a directory\n")
    hello = COMMAND_PLUGINS["hello-command"]
    core_venv.install(hello)
    try:
        for _ in range(2):
            assert {"hello", "vms", "plugins"} <= volar_commands(core_venv, XDG_CACHE_HOME=str(blocked))
        greeted = core_venv.run("volar", "hello", XDG_CACHE_HOME=str(blocked))
        assert greeted.returncode == 0 and greeted.stdout.startswith("hello world"), greeted.stderr
    finally:
        core_venv.uninstall(project_metadata(hello)[0])
    assert (blocked / "volant").read_text() == "not a directory\n"


def test_netns_fixture_without_the_testing_extra_says_what_to_install(
    core_wheel: Path, tmp_path: Path
) -> None:
    """Without ``volant-core[testing]`` (no pyroute2) the pytest plugin still loads, and a test using
    ``volant_netns`` fails naming the extra, while the other tests run.
    """
    venv = make_venv(tmp_path / "venv", core_wheel, f"pytest=={pytest.__version__}")
    run = tmp_path / "run"
    run.mkdir()
    (run / "test_uses_netns.py").write_text(
        "def test_netns(volant_netns):\n    pass\n\n\ndef test_other(volant_kestrel):\n    pass\n"
    )
    done = venv.pytest(run, "-rA")
    assert done.returncode == 1, done.stdout
    assert "the volant_netns fixture needs pyroute2: install volant-core[testing]" in done.stdout
    assert "1 passed, 1 error" in done.stdout, done.stdout


def test_an_installed_plugins_settings_are_volantd_options_and_checked_at_start(
    core_venv: Venv, daemon_state_dir: Path
) -> None:
    """``volantd --help`` lists an installed plugin's settings with their variables; an invalid value
    stops volantd naming the variable; ``volar doctor`` shows the setting; uninstalled, all of it goes.
    """
    core_venv.install(LIFECYCLE_PLUGIN)
    try:
        shown = core_venv.run("volantd", "--help")
        assert shown.returncode == 0, shown.stderr
        assert "--lifecycle-example-fail-detach" in shown.stdout
        assert "VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETACH" in " ".join(shown.stdout.split())
        refused = core_venv.run(
            "volantd",
            "--state-dir",
            str(daemon_state_dir),
            "--listen",
            "127.0.0.1:0",
            "--lifecycle-example-fail-detach",
            "maybe",
        )
        assert refused.returncode == 1
        assert "VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETACH" in refused.stderr
        doctor = core_venv.run("volar", "doctor", "-o", "json", VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETACH="true")
        rows = {row["check"]: row for row in json.loads(doctor.stdout)}
        assert rows["setting VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETACH"]["detail"] == (
            "VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETACH=True (set)"
        )
    finally:
        core_venv.uninstall(project_metadata(LIFECYCLE_PLUGIN)[0])
    assert "--lifecycle-example-fail-detach" not in core_venv.run("volantd", "--help").stdout
