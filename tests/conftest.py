"""Fixtures shared by the core tests (the daemon and guest fixtures come from volant_core.testing)."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core.guest import GuestArtifacts
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import host_process_daemon
from volant_core.testing.leased_ip import LeasedIpMode
from volant_core.testing.processes import kill_mentioning
from volant_core.testing.venvs import build_wheel

REPO = Path(__file__).resolve().parents[1]


def _hello() -> dict[str, Any]:
    return json.loads((REPO / "examples" / "hello-http" / "manifest.json").read_text())


#: mutmut's record of each test's duration, in the directory it runs the tests from (``mutants/``).
MUTMUT_STATS = Path("mutmut-stats.json")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``make mutate``, run the quickest tests first.

    mutmut stops a mutant's run at its first failing test and hands pytest the tests in no
    particular order: a mutant that a unit test catches in milliseconds would otherwise wait for
    whichever daemon tests came first (docs/testing.md). Outside mutmut the order is untouched.
    """
    if not os.environ.get("MUTANT_UNDER_TEST") or not MUTMUT_STATS.is_file():
        return
    durations = json.loads(MUTMUT_STATS.read_text())["duration_by_test"]
    items.sort(key=lambda item: durations.get(item.nodeid, math.inf))


@pytest.fixture
def hello_manifest() -> dict[str, Any]:
    """The example runtime shipped in examples/hello-http (a small HTTP server in the guest)."""
    return _hello()


@pytest.fixture(scope="module")
def hello_manifest_module() -> dict[str, Any]:
    """:func:`hello_manifest` for module-scoped fixtures."""
    return _hello()


@pytest.fixture
def host_manifest(hello_manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """hello-http made fit for many copies on one host (the ``test-host-process`` backend).

    On a host every VM's workload shares the loopback interface, so the same
    server binds port 0 instead of 8000 and the manifest drops its health check
    (kestrel then reports the workload ready once it started). ``base_url``
    still names port 8000: requests proxied to the workload do not reach it.
    The entrypoint ends with an argument unique to the test, which finds its
    workload processes (``processes_mentioning(manifest["workload"]["entrypoint"][-1])``); any
    still running at teardown are killed.
    """
    manifest = copy.deepcopy(hello_manifest)
    workload = manifest["workload"]
    code = workload["entrypoint"][-1]
    assert '("127.0.0.1", 8000)' in code, "examples/hello-http changed: adapt this fixture"
    workload["entrypoint"][-1] = code.replace('("127.0.0.1", 8000)', '("127.0.0.1", 0)')
    workload["entrypoint"].append(f"volant-test-workload-{uuid.uuid4().hex}")
    del manifest["health_check"]
    manifest["name"] = manifest["runtime"] = "hello-host"
    yield manifest
    kill_mentioning(workload["entrypoint"][-1])


@pytest.fixture
def leased_ip_mode() -> LeasedIpMode:
    """A network-mode plugin whose VMs lease an IP address (:class:`LeasedIpMode`)."""
    return LeasedIpMode()


@pytest.fixture
def without_vfio(monkeypatch: pytest.MonkeyPatch) -> None:
    """Daemons started in the test load no ``vfio`` plugin (``VOLANT_DISABLE_PLUGINS``), as on a host
    without volant-vfio (the workspace installs it). Use it with ``pytest.mark.usefixtures``, which
    sets it up before the daemon fixtures.
    """
    _disable_plugin(monkeypatch, "vfio")


@pytest.fixture
def without_cloudinit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Daemons started in the test load no ``cloudinit`` plugin (no seed builder), as on a host without
    volant-cloudinit (the workspace installs it); composes with :func:`without_vfio`.
    """
    _disable_plugin(monkeypatch, "cloudinit")


def _disable_plugin(monkeypatch: pytest.MonkeyPatch, plugin: str) -> None:
    """Add ``plugin`` to ``VOLANT_DISABLE_PLUGINS`` for the test (keeping those already there)."""
    disabled = [name for name in os.environ.get("VOLANT_DISABLE_PLUGINS", "").split(",") if name]
    monkeypatch.setenv("VOLANT_DISABLE_PLUGINS", ",".join([*disabled, plugin]))


@pytest.fixture
def host_api(host_manifest: dict[str, Any]) -> Iterator[RunningDaemon]:
    """A daemon on the test-host-process backend (fast reconcile and stop) with ``hello-host`` installed."""
    with host_process_daemon(reconcile_interval=0.5, stop_timeout=5) as daemon:
        assert daemon.request("POST", "/api/v1/plugins", host_manifest).status == 201
        yield daemon


@pytest.fixture(scope="session")
def core_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """volant-core built from this checkout as a wheel (hatchling), once per session (never the
    editable development install); skipped without uv.
    """
    return build_wheel(REPO, tmp_path_factory.mktemp("wheel"))


#: A package the guest image is built from, fetched to learn whether ``apt-get download`` works.
APT_PROBE_PACKAGE = "busybox-static"


@pytest.fixture(scope="session")
def apt_download() -> None:
    """Skip the test, saying why, when ``apt-get download`` cannot fetch a package here (no apt,
    no package lists, no network). Tried once per session.
    """
    with tempfile.TemporaryDirectory() as directory:
        try:
            fetched = subprocess.run(
                ["apt-get", "download", "-q", APT_PROBE_PACKAGE],
                cwd=directory,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except FileNotFoundError:
            pytest.skip("apt-get is not installed: the guest image cannot be built here")
    if fetched.returncode != 0:
        said = (fetched.stderr or fetched.stdout).strip().splitlines() or [f"exit {fetched.returncode}"]
        pytest.skip(f"apt-get download {APT_PROBE_PACKAGE} fails here: {said[-1]}")


@pytest.fixture
def buildable_guest(request: pytest.FixtureRequest) -> GuestArtifacts:
    """The session's ``volant_guest``; when it cannot be built because ``apt-get download`` does
    not work here, the test is skipped with apt's reason (any other build failure is an error).
    """
    try:
        guest: GuestArtifacts = request.getfixturevalue("volant_guest")
    except Exception:
        request.getfixturevalue("apt_download")
        raise
    return guest
