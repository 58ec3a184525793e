"""schemathesis over the generated document against a live volantd: no 5xx, nothing off the schema.

The daemon runs the TEST hypervisor ``test-host-process`` (VMs are host processes, so the
VMs the fuzzer creates are cheap) with a runtime installed and one VM running, so calls
naming them succeed. Excluded from fuzzing, as relays of another party's answers that a
schema cannot bound: the agent proxy, a VM's actions and OpenAPI document (their answers
are the guest's), and the SSE stream and ``follow``-ed logs (answers that never end).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import host_process_daemon

#: Operations a schema cannot bound (see the module docstring).
EXCLUDED_PATHS = r"/agent/|/actions/|/vms/\{name\}/openapi$|/events/|/logs$"
#: Examples per operation: the run stays well under a minute on a small machine.
MAX_EXAMPLES = 40
#: The VM seeded before fuzzing.
TARGET_VM = "fuzz-target"
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


@pytest.fixture
def live_api(host_manifest: dict[str, Any]) -> Iterator[RunningDaemon]:
    """A daemon with the host variant of the example runtime installed and one VM of it running."""
    with host_process_daemon() as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        created = api.request("POST", "/api/v1/vms", {"name": TARGET_VM, "plugin": host_manifest["name"]})
        assert created.status == 201, created.body
        api.wait_for_status(TARGET_VM, {"running"})
        yield api


def _pinned(operation: schemathesis.APIOperation, runtime: str) -> dict[str, str] | None:
    """Path parameters naming the seeded VM and runtime, for the operations safe to aim at them:
    reads, start, stop and restart (a fuzzed PATCH or DELETE would change what later runs meet),
    and nothing of deployments (a fuzzed replica count could be thousands of VMs).
    """
    if "deployments" in operation.path or operation.method.upper() in ("PATCH", "DELETE"):
        return None
    pinned = {"name": TARGET_VM, "plugin": runtime}
    names = {parameter.name for parameter in operation.path_parameters}
    return {key: value for key, value in pinned.items() if key in names} or None


def _fuzz(
    operation: schemathesis.APIOperation, mode: GenerationMode, path: dict[str, str] | None = None
) -> str | None:
    """Run ``operation`` with generated cases of ``mode`` (``path`` parameters fixed when given);
    the failure, or None when every case passed or ``mode`` has nothing to generate.
    """

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS)

    try:
        run()
    except Unsatisfiable:  # nothing to negate (no parameter, no body) in negative mode
        return None
    except Exception as failure:  # hypothesis re-raises the check's failure with the shrunk case
        return f"{operation.label} ({mode.value}, path {path}): {failure}"
    return None


def test_api_answers_as_documented(live_api: RunningDaemon, host_manifest: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_url(f"{live_api.url}/openapi").exclude(path_regex=EXCLUDED_PATHS)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    runs = [
        (op, mode, None) for op in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]
    runs += [
        (op, GenerationMode.POSITIVE, pinned)
        for op in operations
        if (pinned := _pinned(op, host_manifest["name"]))
    ]
    failures = [failure for op, mode, path in runs if (failure := _fuzz(op, mode, path)) is not None]
    assert not failures, "\n\n".join(failures)
