"""Fault suite: hypothesis-generated manifests, VM create bodies and config patches against the API.

Each document starts as a valid one (the hello-host manifest, a create body, a config patch) and
gets one to three changes: a value replaced by one of the wrong type, a huge or negative number, an
odd string (NUL, lone surrogates, path traversal, 10 kB), NaN or infinity (invalid JSON), a
required key dropped, an unknown key added, or a key of the schema (``docs/schemas``, the
``ConfigPatch`` model) given a junk value. volantd must never answer 5xx, and a refusal (4xx) must
leave nothing: no runtime, no VM row, no VM directory, no configuration version.

Generated VMs run on the TEST backend ``test-host-process`` (kestrel on the host): so that nothing
generated is executed on the host, a create keeps hello-host's workload (the rest is generated).
Runs are derandomized (the same examples every run) and bounded by ``max_examples``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from volant_core.orchestrator.vmconfig import ConfigPatch
from volant_core.testing.daemon import RunningDaemon

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]
MANIFEST_KEYS = sorted(
    json.loads((REPO / "docs/schemas/runtime-manifest.schema.json").read_text())["properties"]
)
PATCH_KEYS = sorted(ConfigPatch.model_fields)
CREATE_KEYS = [
    "name",
    "plugin",
    "runtime",
    "cpu_cores",
    "memory_mb",
    "kernel_cmdline",
    "hypervisor",
    "config",
]

#: Every generated run: the same examples each time, no per-example deadline (the machine is shared).
FAULT_SETTINGS = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ODD_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "../../../../etc/passwd",
    "/",
    "-",
    "x" * 10_000,
    "ünïcødé-🚀",
    "$(reboot)",
    "null",
    "1e309",
    "\n",
]
HUGE_NUMBERS = [-1, 0, 2**31, 2**63, 2**64 + 1, 10**30, -(10**30), float("nan"), float("inf"), 1e308, 0.5]

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(HUGE_NUMBERS),
    st.integers(),
    st.floats(),
    st.sampled_from(ODD_STRINGS),
    st.text(max_size=30),
    st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
)


def paths(document: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path (keys and indices) of every value inside ``document``, parents first."""
    children = (
        document.items()
        if isinstance(document, dict)
        else enumerate(document)
        if isinstance(document, list)
        else ()
    )
    for key, value in children:
        yield (*prefix, key)
        yield from paths(value, (*prefix, key))


@st.composite
def perturbed(
    draw: st.DrawFn, base: dict[str, Any], schema_keys: list[str], least: int = 1
) -> dict[str, Any]:
    """``base`` with ``least`` to three changes: replaced by junk, dropped, or an unknown or schema
    key added.
    """
    document = copy.deepcopy(base)
    for _ in range(draw(st.integers(least, 3))):
        path = draw(st.sampled_from([*paths(document), *[(key,) for key in schema_keys]]))
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "replace", "drop", "unknown"]))
        if action == "drop" and path[-1] in (parent if isinstance(parent, dict) else range(len(parent))):
            del parent[path[-1]]
        elif action == "unknown" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["x-unknown", "", "\x00", "__proto__"]))] = draw(junk)
        elif isinstance(parent, dict) or path[-1] < len(parent):
            parent[path[-1]] = draw(junk)
    return document


def traces(api: RunningDaemon) -> dict[str, Any]:
    """What a refusal must not change: the runtimes, the VM rows, the VM directories, base's config."""
    run_dir = api.state_dir / "run"
    return {
        "runtimes": api.request("GET", "/api/v1/plugins").json()["plugins"],
        "vms": sorted(vm["name"] for vm in api.request("GET", "/api/v1/vms").json()),
        "dirs": sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else [],
        "base config": api.request("GET", "/api/v1/vms/base/config").json().get("version"),
    }


def send_and_check(api: RunningDaemon, method: str, path: str, body: dict[str, Any]) -> int:
    """Send ``body``; assert no 5xx, and that a 4xx changed nothing; the status."""
    before = traces(api)
    reply = api.request(method, path, body)
    assert reply.status < 500, f"{method} {path} {json.dumps(body)[:2000]} -> {reply.status} {reply.body!r}"
    if reply.status >= 400:
        assert reply.json()["error"]["message"], reply.body
        assert traces(api) == before, f"a refused {method} {path} left something behind"
    return reply.status


@pytest.fixture
def api(host_api: RunningDaemon, host_manifest: dict[str, Any]) -> RunningDaemon:
    """The host-process daemon with hello-host installed and one VM, ``base``, to reconfigure."""
    assert host_api.request("POST", "/api/v1/vms", {"name": "base", "plugin": "hello-host"}).status == 201
    return host_api


def generated_manifest(host_manifest: dict[str, Any]) -> dict[str, Any]:
    """hello-host under a name not installed yet, the base of generated manifests."""
    return {**host_manifest, "name": "gen", "runtime": "gen"}


def test_generated_manifests_never_fail_and_a_refusal_installs_nothing(
    api: RunningDaemon, host_manifest: dict[str, Any]
) -> None:
    @FAULT_SETTINGS
    @given(perturbed(generated_manifest(host_manifest), MANIFEST_KEYS))
    def install(manifest: dict[str, Any]) -> None:
        if send_and_check(api, "POST", "/api/v1/plugins", manifest) == 201:
            assert api.request("DELETE", f"/api/v1/plugins/{manifest['name']}").status == 204

    install()


def test_generated_create_bodies_never_fail_and_a_refusal_leaves_no_vm(
    api: RunningDaemon, host_manifest: dict[str, Any]
) -> None:
    base = {"name": "gen", "plugin": "hello-host", "cpu_cores": 1, "memory_mb": 256, "config": {}}

    @FAULT_SETTINGS
    @given(
        perturbed(base, CREATE_KEYS, least=0),
        st.one_of(st.none(), perturbed(host_manifest, MANIFEST_KEYS)),
    )
    def create(body: dict[str, Any], manifest: dict[str, Any] | None) -> None:
        if manifest is not None and isinstance(body.get("config"), dict):
            body["config"]["manifest"] = {
                **manifest,
                "workload": host_manifest["workload"],
            }  # nothing generated runs
        if send_and_check(api, "POST", "/api/v1/vms", body) == 201:
            assert api.request("DELETE", f"/api/v1/vms/{body['name']}").status == 204

    create()


def test_generated_config_patches_never_fail_and_a_refusal_stores_no_version(api: RunningDaemon) -> None:
    base = {
        "kernel_cmdline": "rev=1",
        "resources": {"cpu_cores": 1, "memory_mb": 384},
        "metadata": {"team": "a"},
    }

    @FAULT_SETTINGS
    @given(perturbed(base, PATCH_KEYS))
    def patch(body: dict[str, Any]) -> None:
        send_and_check(api, "PATCH", "/api/v1/vms/base/config", body)

    patch()
