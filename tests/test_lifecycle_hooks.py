"""The lifecycle hooks, called in the documented order through the real API (host-process backend).

Documented order (:mod:`volant_core.hookspecs`): ``volant_vm_validate`` ->
``volant_prepare_launch`` -> ``volant_vm_launched`` -> ``volant_vm_stopped`` ->
``volant_vm_deleted``, with ``volant_event`` for every event emitted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from volant_core import hookimpl
from volant_core.context import PluginContext
from volant_core.errors import ValidationError
from volant_core.events import Event
from volant_core.launch import Instance, LaunchSpec
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hooks import HookRecorder as CallRecorder
from volant_core.testing.hostvm import host_process_daemon
from volant_core.testing.processes import processes_mentioning
from volant_core.vm import VMView


class HookRecorder:
    """Records every lifecycle hook call as ``(hook or event type, vm name)``; may be told to fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []
        self.event_ids: list[int] = []
        self.fail_in: dict[str, BaseException] = {}
        self.validated_as: list[str] = []  # the plugin named by the context volant_vm_validate got
        self._lock = threading.Lock()

    def _record(self, what: str, name: str | None) -> None:
        with self._lock:
            self.calls.append((what, name))
        if what in self.fail_in:
            raise self.fail_in[what]

    def of(self, name: str) -> list[str]:
        """What was recorded for VM ``name``, in order."""
        return [what for what, vm in self.calls if vm == name]

    @hookimpl
    def volant_vm_validate(self, vm: VMView, context: PluginContext) -> None:
        """Record, with the plugin of the context given."""
        self.validated_as.append(context.plugin)
        self._record("validate", vm.name)

    @hookimpl
    def volant_prepare_launch(self, vm: VMView, spec: LaunchSpec) -> None:
        """Record."""
        assert spec.name == vm.name
        self._record("prepare_launch", vm.name)

    @hookimpl
    def volant_vm_launched(self, vm: VMView, instance: Instance) -> None:
        """Record."""
        assert instance.pid == vm.pid
        self._record("launched", vm.name)

    @hookimpl
    def volant_vm_stopped(self, vm: VMView, exit_status: int | None) -> None:
        """Record."""
        self._record("stopped", vm.name)

    @hookimpl
    def volant_vm_deleted(self, vm: VMView) -> None:
        """Record."""
        self._record("deleted", vm.name)

    @hookimpl
    def volant_event(self, event: Event) -> None:
        """Record the event type and its id."""
        with self._lock:
            self.event_ids.append(event.id)
        self._record(event.type, event.name)


@pytest.fixture
def recorder() -> HookRecorder:
    """A fresh :class:`HookRecorder`."""
    return HookRecorder()


@pytest.fixture
def api(
    recorder: HookRecorder, host_manifest: dict[str, Any], leased_ip_mode: Any
) -> Iterator[RunningDaemon]:
    """A daemon on the host-process backend whose VMs lease an IP, with ``recorder`` registered."""
    plugins = [leased_ip_mode.registration, ("hook-recorder", recorder)]
    with host_process_daemon(plugins=plugins, network_mode=leased_ip_mode.mode) as daemon:
        assert daemon.request("POST", "/api/v1/plugins", host_manifest).status == 201
        yield daemon


def _nothing_left(api: RunningDaemon, name: str) -> None:
    store = api.daemon.store
    assert api.request("GET", f"/api/v1/vms/{name}").status == 404
    assert store.vms.list() == [] and store.ips.leased() == []
    assert not (api.daemon.settings.runtime_dir / name).exists()
    assert processes_mentioning(str(api.state_dir)) == []


BOOT = ["VM_STARTING", "prepare_launch", "launched", "VM_RUNNING"]
STOP = ["VM_STOPPING", "VM_STOPPED", "stopped"]


def test_hooks_follow_the_lifecycle_in_order(api: RunningDaemon, recorder: HookRecorder) -> None:
    calls = CallRecorder.attach(api.daemon.plugins)  # the plugin kit's recorder sees the same
    assert api.request("POST", "/api/v1/vms", {"name": "life", "plugin": "hello-host"}).status == 201
    api.wait_for_status("life", {"running"}, timeout=60)
    assert api.request("POST", "/api/v1/vms/life/stop").json()["status"] == "stopped"
    assert api.request("POST", "/api/v1/vms/life/start").status == 200
    api.wait_for_status("life", {"running"}, timeout=60)
    assert api.request("DELETE", "/api/v1/vms/life").status == 204

    assert recorder.of("life") == [
        "validate",
        "VM_CREATED",
        *BOOT,
        *STOP,
        *BOOT,
        *STOP,
        "VM_DELETED",
        "deleted",
    ]
    stored = [e.id for e in api.daemon.store.events.since(0) if e.vm_name == "life"]
    assert recorder.event_ids == stored == sorted(set(stored))
    assert recorder.validated_as == ["hook-recorder"]  # its own context
    assert [(r.plugin, r.result) for r in calls.results("volant_vm_validate")] == [("hook-recorder", None)]
    assert calls.plugins_called("volant_prepare_launch").count("hook-recorder") == 2  # both boots
    _nothing_left(api, "life")


def test_validate_refusal_is_422_and_writes_nothing(api: RunningDaemon, recorder: HookRecorder) -> None:
    recorder.fail_in["validate"] = ValidationError("cpu_cores: this host wants 2", field="cpu_cores")
    answer = api.request("POST", "/api/v1/vms", {"name": "refused", "plugin": "hello-host"})
    assert answer.status == 422
    assert answer.json()["error"]["details"][0]["field"] == "cpu_cores"
    assert recorder.of("refused") == ["validate"]
    assert [e for e in api.daemon.store.events.since(0) if e.vm_name == "refused"] == []
    _nothing_left(api, "refused")


@pytest.mark.parametrize(
    ("error", "status"),
    [(ValidationError("devices: no GPU left", field="devices"), 422), (RuntimeError("plugin bug"), 500)],
    ids=["refused", "plugin-bug"],
)
def test_prepare_launch_failure_undoes_the_create(
    api: RunningDaemon, recorder: HookRecorder, error: Exception, status: int
) -> None:
    recorder.fail_in["prepare_launch"] = error
    answer = api.request("POST", "/api/v1/vms", {"name": "undone", "plugin": "hello-host"})
    assert answer.status == status
    if status == 422:
        assert "no GPU left" in answer.json()["error"]["message"]
    assert recorder.of("undone") == [
        "validate",
        "VM_CREATED",
        "VM_STARTING",
        "prepare_launch",
        "VM_DELETED",
        "deleted",
    ]
    _nothing_left(api, "undone")
