"""``Idempotency-Key`` on ``POST /api/v1/vms`` and ``POST /api/v1/deployments``, over HTTP."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from volant_core import hookimpl
from volant_core.api.idempotency import HEADER
from volant_core.api.security import KEY_HEADER
from volant_core.errors import VolantError
from volant_core.store.idempotency import KEY_LIFETIME, KeySlot
from volant_core.store.models import IdempotencyKey, utcnow
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import host_process_daemon
from volant_core.vm import VMView


class Gate:
    """A plugin that fails the validation of VMs ``flaky`` and ``refused`` once, and holds VM ``slow``.

    ``flaky`` crashes (an unexpected exception); ``refused`` raises a :class:`VolantError`, which the
    API answers itself with its 500; ``slow`` waits until the gate is opened.
    """

    def __init__(self) -> None:
        self.failures = {"flaky": 1, "refused": 1}
        self.entered = threading.Event()
        self.opened = threading.Event()

    @hookimpl
    def volant_vm_validate(self, vm: VMView) -> None:
        """Crash, refuse (each a 500) or wait, depending on the VM's name."""
        if self.failures.get(vm.name):
            self.failures[vm.name] -= 1
            if vm.name == "flaky":
                raise RuntimeError("flaky plugin")
            raise VolantError("the plugin refuses this once")
        if vm.name == "slow":
            self.entered.set()
            assert self.opened.wait(30)


@pytest.fixture
def gate() -> Gate:
    """The :class:`Gate` plugin of the daemon."""
    return Gate()


@pytest.fixture
def api(host_manifest: dict[str, Any], gate: Gate) -> Iterator[RunningDaemon]:
    """A daemon with the host-process runtime installed and :class:`Gate` loaded."""
    with host_process_daemon(plugins=[("test-gate", gate)], stop_timeout=5) as daemon:
        assert daemon.request("POST", "/api/v1/plugins", host_manifest).status == 201
        yield daemon


def post(
    api: RunningDaemon, path: str, body: dict[str, Any], key: str | None, credential: str | None = None
) -> tuple[int, Any]:
    """POST ``body`` with ``key`` as the Idempotency-Key (and ``credential`` as the API key); the
    status and JSON answer.
    """
    headers = {"Content-Type": "application/json", **({HEADER: key} if key else {})}
    if credential is not None:
        headers[KEY_HEADER] = credential
    reply = api.request("POST", path, raw=json.dumps(body).encode(), headers=headers)
    return reply.status, reply.json()


def vm_names(api: RunningDaemon) -> list[str]:
    """Names of every VM."""
    return [vm["name"] for vm in api.request("GET", "/api/v1/vms").json()]


def conflict_field(answer: Any) -> str:
    """The field a 409 names."""
    return str(answer["error"]["details"][0]["field"])


def test_vm_create_is_replayed_not_repeated(api: RunningDaemon) -> None:
    body = {"name": "once", "plugin": "hello-host"}
    first = post(api, "/api/v1/vms", body, "key-1")
    assert first[0] == 201
    assert post(api, "/api/v1/vms", body, "key-1") == first
    assert vm_names(api) == ["once"]
    # Without the key the same body is a new request: the VM exists already.
    assert post(api, "/api/v1/vms", body, None)[0] == 409
    # The same key with another body is refused, naming the header.
    status, answer = post(api, "/api/v1/vms", {"name": "twice", "plugin": "hello-host"}, "key-1")
    assert status == 409 and conflict_field(answer) == HEADER
    assert answer["error"]["message"].endswith("use a new key for a new request")
    assert vm_names(api) == ["once"]


def test_a_key_belongs_to_one_route_and_one_credential(api: RunningDaemon) -> None:
    body = {"name": "mine", "plugin": "hello-host"}
    first = post(api, "/api/v1/vms", body, "shared", credential="client-a")
    assert first[0] == 201
    # another route with the same key runs as a request of its own (the deployment body is wrong)
    status, answer = post(api, "/api/v1/deployments", body, "shared", credential="client-a")
    assert status == 422 and conflict_field(answer) != HEADER
    # another client's same key and body is its own request: no replay of client-a's answer
    status, answer = post(api, "/api/v1/vms", body, "shared", credential="client-b")
    assert status == 409 and conflict_field(answer) == "name"  # the VM exists: it ran again
    assert post(api, "/api/v1/vms", body, "shared", credential="client-a") == first


def test_a_key_a_stopped_daemon_left_running_is_free_after_its_restart(api: RunningDaemon) -> None:
    body = {"name": "crashed", "plugin": "hello-host"}
    # what a daemon killed while serving this request leaves: the key claimed, no answer
    digest = hashlib.sha256(json.dumps(body).encode()).hexdigest()
    slot = KeySlot("", "POST /api/v1/vms", "key-crash")
    assert api.daemon.store.idempotency.claim(slot, digest) is None
    status, answer = post(api, "/api/v1/vms", body, "key-crash")
    assert status == 409 and "still running" in answer["error"]["message"]
    api.restart()
    assert post(api, "/api/v1/vms", body, "key-crash")[0] == 201
    assert vm_names(api) == ["crashed"]


def test_failures_4xx_remembered_5xx_not(api: RunningDaemon) -> None:
    missing = {"name": "lost", "plugin": "no-such-runtime"}
    first = post(api, "/api/v1/vms", missing, "key-404")
    assert first[0] == 404
    assert post(api, "/api/v1/vms", missing, "key-404") == first

    # A 5xx frees the key, whether the responder crashed or answered the 500 itself: a retry runs.
    for name in ("flaky", "refused"):
        body = {"name": name, "plugin": "hello-host"}
        assert post(api, "/api/v1/vms", body, f"key-{name}")[0] == 500
        assert post(api, "/api/v1/vms", body, f"key-{name}")[0] == 201
    assert vm_names(api) == ["flaky", "refused"]


def test_key_in_use_is_409_until_the_first_request_ends(api: RunningDaemon, gate: Gate) -> None:
    body = {"name": "slow", "plugin": "hello-host"}
    answers: list[tuple[int, Any]] = []
    first = threading.Thread(target=lambda: answers.append(post(api, "/api/v1/vms", body, "key-slow")))
    first.start()
    try:
        assert gate.entered.wait(30)
        status, answer = post(api, "/api/v1/vms", body, "key-slow")
        assert status == 409 and conflict_field(answer) == HEADER
        assert "still running" in answer["error"]["message"]
    finally:
        gate.opened.set()
        first.join(30)
    assert answers[0][0] == 201
    assert post(api, "/api/v1/vms", body, "key-slow") == answers[0]


def test_deployment_create_is_replayed_and_keys_expire(api: RunningDaemon) -> None:
    body = {"name": "web", "replicas": 0, "config": {"plugin": "hello-host"}}
    first = post(api, "/api/v1/deployments", body, "key-dep")
    assert first[0] == 201
    assert post(api, "/api/v1/deployments", body, "key-dep") == first
    # Once the key is older than its lifetime it is forgotten: the request runs again.
    store = api.daemon.orchestrator.store
    aged = utcnow() - KEY_LIFETIME - timedelta(minutes=1)
    IdempotencyKey.update(created_at=aged).where(IdempotencyKey.key == "key-dep").execute(store.db)
    status, answer = post(api, "/api/v1/deployments", body, "key-dep")
    assert status == 409 and conflict_field(answer) != HEADER  # the deployment exists already


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_bad_keys_are_422(api: RunningDaemon, key: str) -> None:
    headers = {"Content-Type": "application/json", HEADER: key}
    reply = api.request("POST", "/api/v1/vms", raw=b"{}", headers=headers)
    assert reply.status == 422
    error = reply.json()["error"]
    assert error["details"][0]["field"] == HEADER
    assert "give 1 to 255 printable characters" in error["message"]


@pytest.mark.parametrize("key", ["k", "k" * 255], ids=["shortest", "longest"])
def test_keys_of_1_to_255_characters_are_accepted(api: RunningDaemon, key: str) -> None:
    body = {"name": "edge", "plugin": "hello-host"}
    first = post(api, "/api/v1/vms", body, key)
    assert first[0] == 201
    assert post(api, "/api/v1/vms", body, key) == first


def test_header_is_documented(api: RunningDaemon) -> None:
    spec = api.request("GET", "/openapi").json()
    for path in ("/api/v1/vms", "/api/v1/deployments"):
        parameters = spec["paths"][path]["post"]["parameters"]
        assert {"name": HEADER, "in": "header", "required": False} == {
            k: v for k, v in parameters[0].items() if k in ("name", "in", "required")
        }
