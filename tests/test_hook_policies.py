"""How hooks are called: one policy per hook, pluggy's own order, all-or-nothing registration.

Through real daemons on the host-process backend, with in-process plugins that misbehave on purpose.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pluggy
import pytest

from volant_core import hookimpl
from volant_core.descriptors import NetworkModeDescriptor
from volant_core.launch import HypervisorDescriptor, Instance
from volant_core.plugins import load_plugins
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import host_process_daemon
from volant_core.vm import VMView


class Calls:
    """Where the recording plugins below note who was called, in order."""

    def __init__(self) -> None:
        self.order: list[str] = []


class Notified:
    """Records its ``volant_vm_stopped`` and ``volant_vm_launched`` calls; raises when told to."""

    def __init__(self, name: str, calls: Calls, *, raises: bool = False) -> None:
        self.name = name
        self.calls = calls
        self.raises = raises

    @hookimpl
    def volant_vm_stopped(self, vm: VMView) -> None:
        """Record, then maybe raise."""
        self.calls.order.append(f"{self.name}:stopped:{vm.name}")
        if self.raises:
            raise RuntimeError(f"{self.name} breaks on stop")

    @hookimpl
    def volant_vm_launched(self, vm: VMView, instance: Instance) -> None:
        """Record, then maybe raise."""
        self.calls.order.append(f"{self.name}:launched:{vm.name}")
        if self.raises:
            raise RuntimeError(f"{self.name} breaks on launch")


class TryFirst(Notified):
    """A recorder whose ``volant_vm_stopped`` is marked ``tryfirst``."""

    @hookimpl(tryfirst=True)
    def volant_vm_stopped(self, vm: VMView) -> None:
        """Record first."""
        self.calls.order.append(f"{self.name}:stopped:{vm.name}")


class TryLast(Notified):
    """A recorder whose ``volant_vm_stopped`` is marked ``trylast``."""

    @hookimpl(trylast=True)
    def volant_vm_stopped(self, vm: VMView) -> None:
        """Record last."""
        self.calls.order.append(f"{self.name}:stopped:{vm.name}")


class WrongType:
    """Returns a dict instead of descriptors, after registering a network mode."""

    @hookimpl
    def volant_network_modes(self) -> list[NetworkModeDescriptor]:
        """A mode that must not survive the plugin's failure."""
        return [NetworkModeDescriptor("wrong-type-mode", factory=object)]

    @hookimpl
    def volant_hypervisors(self) -> Any:
        """Not a list of HypervisorDescriptor."""
        return {"name": "broken"}


class Wrapper:
    """Implements a hook as a pluggy wrapper, which Volant refuses."""

    @hookimpl(wrapper=True)
    def volant_vm_stopped(self) -> Iterator[None]:
        """A new-style wrapper."""
        return (yield)


class BadManifestShipper:
    """Registers a hypervisor, then ships an invalid manifest: it must keep neither."""

    @hookimpl
    def volant_hypervisors(self) -> list[HypervisorDescriptor]:
        """A hypervisor that must not survive the plugin's failure."""
        return [HypervisorDescriptor("half-registered", factory=object)]

    @hookimpl
    def volant_runtime_manifests(self) -> list[dict[str, Any]]:
        """A manifest without a workload."""
        return [{"name": "broken-runtime", "version": "1"}]


@pytest.fixture
def calls() -> Calls:
    """A fresh call log."""
    return Calls()


def _statuses(api: RunningDaemon) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in api.request("GET", "/api/v1/system/plugins").json()["plugins"]}


def test_a_registration_returning_the_wrong_type_fails_its_plugin_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    with host_process_daemon(plugins=[("wrong-type", WrongType())]) as api:
        plugin = _statuses(api)["wrong-type"]
        assert plugin["status"] == "failed"
        assert "volant_hypervisors must return a list" in plugin["error"]
        info = api.request("GET", "/api/v1/system/info").json()
        assert "wrong-type-mode" not in info["network_modes"]  # nothing it registered survives
        assert api.request("GET", "/healthz").status == 200
    assert any("plugin wrong-type" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_registration_is_all_or_nothing() -> None:
    plugins = load_plugins(disabled=(), extra=[("half", BadManifestShipper())])
    assert plugins.info["half"].status == "failed"
    assert "invalid manifest" in (plugins.info["half"].error or "")
    assert "half-registered" not in plugins.registries.hypervisors


def test_hook_wrappers_are_refused() -> None:
    plugins = load_plugins(disabled=(), extra=[("wrapper", Wrapper())])
    assert plugins.info["wrapper"].status == "failed"
    assert "hook wrappers are not supported" in (plugins.info["wrapper"].error or "")


def test_a_raising_notification_never_breaks_the_stop_and_the_others_are_called(
    calls: Calls, host_manifest: dict[str, Any]
) -> None:
    plugins = [("before", Notified("before", calls)), ("breaks", Notified("breaks", calls, raises=True))]
    plugins.append(("after", Notified("after", calls)))
    with host_process_daemon(plugins=plugins, stop_timeout=5) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        created = api.request("POST", "/api/v1/vms", {"name": "n1", "plugin": "hello-host"})
        assert created.status == 201  # a raising volant_vm_launched does not discard the VM
        assert api.wait_for_status("n1", {"running"})["status"] == "running"
        stopped = api.request("POST", "/api/v1/vms/n1/stop")
        assert stopped.status == 200 and stopped.json()["status"] == "stopped"
        assert [c for c in calls.order if ":stopped:" in c] == [
            "after:stopped:n1",
            "breaks:stopped:n1",
            "before:stopped:n1",
        ]
        broken = _statuses(api)["breaks"]
        assert broken["status"] == "degraded"
        assert broken["errors"] == [
            "volant_vm_launched raised RuntimeError: breaks breaks on launch",
            "volant_vm_stopped raised RuntimeError: breaks breaks on stop",
        ]
        events = [e for e in api.daemon.store.events.since(0) if e.type == "PLUGIN_ERROR"]
        assert [e.vm_name for e in events] == ["n1", "n1"]
        assert _statuses(api)["before"]["status"] == "loaded"


def test_implementations_are_called_in_pluggys_own_order(calls: Calls) -> None:
    registered = [
        ("plain-1", Notified("plain-1", calls)),
        ("first", TryFirst("first", calls)),
        ("last", TryLast("last", calls)),
        ("plain-2", Notified("plain-2", calls)),
    ]
    plugins = load_plugins(disabled=(), extra=registered)
    vm = type("VM", (), {"name": "x"})()
    plugins.calls.notify("volant_vm_stopped", vm=vm, exit_status=0)
    ours, calls.order[:] = list(calls.order), []
    native = pluggy.PluginManager("volant")
    native.add_hookspecs(plugins.manager.hook.volant_vm_stopped.spec.namespace)
    for name, plugin in registered:
        native.register(plugin, name=name)
    native.hook.volant_vm_stopped(vm=vm, exit_status=0, context=None)
    assert (
        ours
        == calls.order
        == [
            "first:stopped:x",
            "plain-2:stopped:x",
            "plain-1:stopped:x",
            "last:stopped:x",
        ]
    )


def test_the_core_default_answers_last() -> None:
    plugins = load_plugins(disabled=())
    owners = [owner for owner, _ in plugins.calls.implementations("volant_allocate_ip")]
    assert owners[-1] == "core"
