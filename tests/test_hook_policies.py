"""How hooks are called: one policy per hook, pluggy's own order, all-or-nothing registration.

Through real daemons on the host-process backend, with in-process plugins that misbehave on purpose.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest

from volant_core import hookimpl
from volant_core.channels import UnixSocketChannel
from volant_core.descriptors import LaunchAdditions, NetworkAttachment, NetworkModeDescriptor
from volant_core.errors import LaunchError
from volant_core.events import Event
from volant_core.launch import (
    AgentChannel,
    DiskSpec,
    HypervisorDescriptor,
    Instance,
    LaunchSpec,
    NicSpec,
    PciDeviceSpec,
)
from volant_core.plugins import load_plugins
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hooks import HookRecorder
from volant_core.testing.hostvm import HostProcessLauncher, host_process_daemon
from volant_core.testing.processes import processes_mentioning
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


def _failed_create_in_mode(api: RunningDaemon, manifest: dict[str, Any], name: str, mode: str) -> str:
    """Install ``manifest``, create VM ``name`` in network ``mode``: the message of its 500."""
    assert api.request("POST", "/api/v1/plugins", manifest).status == 201
    body = {"name": name, "plugin": "hello-host", "config": {"network": {"mode": mode}}}
    answer = api.request("POST", "/api/v1/vms", body)
    assert answer.status == 500
    return str(answer.json()["error"]["message"])


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


@pytest.mark.parametrize("traced", [True, False], ids=["VOLANT_TRACE_HOOKS=1", "unset"])
def test_volant_trace_hooks_logs_each_call_with_the_plugin_called(
    traced: bool, calls: Calls, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    if traced:
        monkeypatch.setenv("VOLANT_TRACE_HOOKS", "1")
    else:
        monkeypatch.delenv("VOLANT_TRACE_HOOKS", raising=False)
    plugins = load_plugins(
        disabled=(), extra=[("first", Notified("first", calls)), ("second", TryLast("second", calls))]
    )
    caplog.set_level(logging.INFO, logger="volant_core.hookcall")
    plugins.calls.notify("volant_vm_stopped", vm=type("VM", (), {"name": "x"})(), exit_status=0)
    traced_lines = [r.getMessage() for r in caplog.records if r.name == "volant_core.hookcall"]
    expected = ["hook volant_vm_stopped -> plugin first", "hook volant_vm_stopped -> plugin second"]
    assert traced_lines == (expected if traced else [])


def test_a_recorder_sees_a_resolution_call_and_the_plugin_that_answered() -> None:
    plugins = load_plugins(disabled=())
    recorder = HookRecorder.attach(plugins)
    subnet = ipaddress.IPv4Network("10.5.0.0/29")
    taken = frozenset({"10.5.0.1"})
    answer = plugins.calls.resolve(
        "volant_allocate_ip", vm_name="web", subnet=subnet, taken=taken, reserved=frozenset()
    )
    assert answer == "10.5.0.2"
    assert [(call.hook, call.kwargs["vm_name"]) for call in recorder.calls] == [("volant_allocate_ip", "web")]
    assert recorder.plugins_called("volant_allocate_ip") == ["core"]
    assert [result.result for result in recorder.results("volant_allocate_ip")] == ["10.5.0.2"]


def test_the_core_default_answers_last() -> None:
    plugins = load_plugins(disabled=())
    owners = [owner for owner, _ in plugins.calls.implementations("volant_allocate_ip")]
    assert owners[-1] == "core"


class FutureHook:
    """Implements, as optional, ``volant_vm_paused``: a hook this Volant does not specify (as one of
    a later version would be); notes each call.
    """

    def __init__(self) -> None:
        self.called: list[str] = []

    @hookimpl(optionalhook=True)
    def volant_vm_paused(self) -> None:
        """Note the call."""
        self.called.append("volant_vm_paused")


def test_a_hook_called_by_another_policy_than_its_own_is_refused_before_any_plugin_runs() -> None:
    """The core's guard against calling a hook the wrong way (a programming error): ``TypeError``
    naming the hook and the policy asked for, and no implementation called.
    """
    future = FutureHook()
    plugins = load_plugins(disabled=(), extra=[("future", future)])
    assert plugins.info["future"].status == "loaded"  # an optional hook of a later Volant is allowed
    recorder = HookRecorder.attach(plugins)
    calls = plugins.calls
    wrong = [
        (calls.notify, "volant_allocate_ip", "volant_allocate_ip is not a notification hook"),
        (calls.resolve, "volant_vm_stopped", "volant_vm_stopped is not a resolution hook"),
        (calls.validate, "volant_event", "volant_event is not a validation hook"),
        (calls.notify, "volant_vm_paused", "volant_vm_paused is not a notification hook"),  # no spec
    ]
    for call, hook, message in wrong:
        with pytest.raises(TypeError) as refused:
            call(hook)
        assert str(refused.value) == message
    assert future.called == [] and recorder.calls == []
    assert [name for name, info in plugins.info.items() if info.status == "degraded"] == []


class ShipsARuntime:
    """Ships the example runtime as a dict or a JSON file, the way a pip package would."""

    def __init__(self, manifest: dict[str, Any] | Path) -> None:
        self.manifest = manifest

    @hookimpl
    def volant_runtime_manifests(self) -> list[dict[str, Any] | Path]:
        """One manifest."""
        return [self.manifest]


@pytest.mark.parametrize("as_file", [False, True], ids=["dict", "json-file"])
def test_shipped_runtimes_are_listed_with_their_package_and_go_with_it(
    host_manifest: dict[str, Any], tmp_path: Path, as_file: bool
) -> None:
    shipped: dict[str, Any] | Path = {**host_manifest, "name": "shipped", "runtime": "shipped"}
    if as_file:
        path = tmp_path / "manifest.json"
        path.write_text(json.dumps(shipped))
        shipped = path
    with host_process_daemon(plugins=[("ships", ShipsARuntime(shipped))]) as api:
        listed = {r["name"]: r for r in api.request("GET", "/api/v1/plugins").json()["plugins"]}
        assert listed["shipped"]["source"] == "package:in-process"
        assert api.request("POST", "/api/v1/vms", {"name": "s1", "plugin": "shipped"}).status == 201
        api.daemon.plugins.fail("ships", "uninstalled by the test")
        assert "shipped" not in {r["name"] for r in api.request("GET", "/api/v1/plugins").json()["plugins"]}


class Scratch:
    """Acquires a scratch file per VM in ``volant_prepare_launch`` and releases it in
    ``volant_release_launch``; counts the releases.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.released: list[str] = []

    @hookimpl
    def volant_prepare_launch(self, vm: VMView) -> None:
        """Take the file."""
        (self.directory / vm.name).write_text("held")

    @hookimpl
    def volant_release_launch(self, vm: VMView) -> None:
        """Give it back (idempotent)."""
        (self.directory / vm.name).unlink(missing_ok=True)
        self.released.append(vm.name)


class FailingLauncher:
    """A hypervisor whose launch always fails (after the host resources were acquired)."""

    def launch(self, spec: LaunchSpec) -> Instance:
        """Fail."""
        raise LaunchError("this VMM never starts (test)")

    def adopt(self, spec: LaunchSpec, pid: int) -> None:
        """Nothing to adopt."""
        return None


class FailingHypervisor:
    """Registers ``test-never-starts``."""

    @hookimpl
    def volant_hypervisors(self) -> list[HypervisorDescriptor]:
        """The failing backend."""
        return [HypervisorDescriptor("test-never-starts", FailingLauncher, "TEST: launch always fails")]


def test_what_prepare_launch_acquired_is_released_on_stop_crash_and_a_failed_launch(
    tmp_path: Path, host_manifest: dict[str, Any]
) -> None:
    scratch = Scratch(tmp_path)
    plugins = [("scratch", scratch), ("never-starts", FailingHypervisor())]
    with host_process_daemon(plugins=plugins, stop_timeout=5) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        assert api.request("POST", "/api/v1/vms", {"name": "held", "plugin": "hello-host"}).status == 201
        vm = api.wait_for_status("held", {"running"})
        assert (tmp_path / "held").exists()
        assert api.request("POST", "/api/v1/vms/held/stop").status == 200
        assert not (tmp_path / "held").exists() and scratch.released == ["held"]

        assert api.request("POST", "/api/v1/vms/held/start").status == 200
        vm = api.wait_for_status("held", {"running"})
        os.kill(vm["pid"], signal.SIGKILL)
        api.wait_for_status("held", {"crashed"})
        assert not (tmp_path / "held").exists() and scratch.released == ["held", "held"]

        failed = api.request(
            "POST",
            "/api/v1/vms",
            {"name": "never", "plugin": "hello-host", "hypervisor": "test-never-starts"},
        )
        assert failed.status == 500 and "never starts" in failed.json()["error"]["message"]
        assert not (tmp_path / "never").exists() and scratch.released[-1] == "never"
        assert api.request("GET", "/api/v1/vms/never").status == 404


class Unprintable(Exception):
    """A plugin's error that cannot be shown: rendering it as text raises."""

    def __str__(self) -> str:
        """Fail to render."""
        raise ValueError("this error cannot be shown")


class UnprintableRelease:
    """Its ``volant_release_launch`` raises an :class:`Unprintable`."""

    @hookimpl
    def volant_release_launch(self, vm: VMView) -> None:
        """Raise what cannot be shown."""
        raise Unprintable()


def _plugin_errors(api: RunningDaemon) -> list[tuple[str | None, str, Any]]:
    """``(vm, message, data)`` of every ``PLUGIN_ERROR`` event recorded so far."""
    events = api.daemon.store.events.since(0)
    return [(e.vm_name, e.payload["message"], e.payload["data"]) for e in events if e.type == "PLUGIN_ERROR"]


def test_a_plugin_error_that_cannot_be_shown_is_recorded_on_its_plugin_and_the_stop_completes(
    host_manifest: dict[str, Any],
) -> None:
    """Rendering a plugin's exception is the plugin's code too: one whose text raises is still
    recorded on that plugin (named by its type), and the VM still stops.
    """
    with host_process_daemon(plugins=[("unprintable", UnprintableRelease())], stop_timeout=5) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        assert api.request("POST", "/api/v1/vms", {"name": "r1", "plugin": "hello-host"}).status == 201
        api.wait_for_status("r1", {"running"})
        stopped = api.request("POST", "/api/v1/vms/r1/stop")
        assert stopped.status == 200 and stopped.json()["status"] == "stopped"

        message = "volant_release_launch raised Unprintable: (its message cannot be shown)"
        statuses = _statuses(api)
        assert statuses["unprintable"]["status"] == "degraded"
        assert statuses["unprintable"]["error"] == message
        assert statuses["core"]["status"] == "loaded"
        assert _plugin_errors(api) == [("r1", message, {"plugin": "unprintable"})]


class EventBreaks:
    """Its ``volant_event`` notes the type of each event it is given, then raises."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def volant_event(self, event: Event) -> None:
        """Note, then fail."""
        self.seen.append(event.type)
        raise RuntimeError(f"cannot forward {event.type}")


def test_a_raising_volant_event_degrades_its_plugin_without_announcing_it_with_another_event(
    host_manifest: dict[str, Any],
) -> None:
    """A ``PLUGIN_ERROR`` for a failing ``volant_event`` would be delivered to it again, fail again,
    and so on: the failure is recorded on the plugin only, and the VM's lifecycle goes on.
    """
    breaks = EventBreaks()
    with host_process_daemon(plugins=[("event-breaks", breaks)], stop_timeout=5) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        assert api.request("POST", "/api/v1/vms", {"name": "e1", "plugin": "hello-host"}).status == 201
        api.wait_for_status("e1", {"running"})
        stopped = api.request("POST", "/api/v1/vms/e1/stop")
        assert stopped.status == 200 and stopped.json()["status"] == "stopped"
        assert api.request("GET", "/healthz").status == 200

        stored = [e.type for e in api.daemon.store.events.since(0)]
        assert "PLUGIN_ERROR" not in stored
        assert breaks.seen == stored  # each event given once, none of its own failures
        assert stored[-2:] == ["VM_STOPPING", "VM_STOPPED"]
        statuses = _statuses(api)
        assert statuses["event-breaks"]["status"] == "degraded"
        assert statuses["event-breaks"]["errors"] == [
            f"volant_event raised RuntimeError: cannot forward {kind}" for kind in stored[-10:]
        ]
        assert statuses["core"]["status"] == "loaded"


class FailingRelease:
    """TEST monitor: the ``volant_release_launch`` notification itself fails (standing in for the
    core's own bookkeeping failing around it, such as the event store refusing a write).
    """

    def hook_called(self, hook: str, kwargs: dict[str, Any]) -> None:
        """Fail for ``volant_release_launch``."""
        if hook == "volant_release_launch":
            raise RuntimeError("the notification broke")

    def implementation_returned(self, hook: str, plugin: str, kwargs: dict[str, Any], result: Any) -> None:
        """Nothing to see."""


def test_a_release_launch_notification_that_fails_is_reported_on_the_core_and_the_stop_completes(
    host_manifest: dict[str, Any],
) -> None:
    with host_process_daemon(stop_timeout=5) as api:
        api.daemon.plugins.calls.add_monitor(FailingRelease())
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        assert api.request("POST", "/api/v1/vms", {"name": "r1", "plugin": "hello-host"}).status == 201
        api.wait_for_status("r1", {"running"})
        stopped = api.request("POST", "/api/v1/vms/r1/stop")
        assert stopped.status == 200 and stopped.json()["status"] == "stopped"

        report = (
            "vm r1: volant_release_launch failed (RuntimeError: the notification broke); "
            "what it held on the host may remain"
        )
        core = _statuses(api)["core"]
        assert core["status"] == "degraded"
        assert core["error"] == report
        assert _plugin_errors(api) == [("r1", report, {"plugin": "core"})]


class ChannelLess:
    """TEST backend: the host-process launcher whose instances offer no agent channel."""

    def __init__(self) -> None:
        self.inner = HostProcessLauncher()

    def launch(self, spec: LaunchSpec) -> Instance:
        """Launch, then hide the channel."""
        return _without_channel(self.inner.launch(spec))

    def adopt(self, spec: LaunchSpec, pid: int) -> Instance | None:
        """Adopt, then hide the channel."""
        instance = self.inner.adopt(spec, pid)
        return _without_channel(instance) if instance is not None else None


def _without_channel(instance: Any) -> Any:
    instance.agent_channel = None
    return instance


class ChannelLessHypervisor:
    """Registers ``test-channel-less``."""

    @hookimpl
    def volant_hypervisors(self) -> list[HypervisorDescriptor]:
        """The backend without channels."""
        return [
            HypervisorDescriptor(
                "test-channel-less", ChannelLess, "TEST: no agent channel", capabilities=frozenset({"adopt"})
            )
        ]


class OffersTheSocket:
    """Offers the host-process agent socket as the channel of a VM whose instance has none."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    @hookimpl
    def volant_agent_channel(self, vm: VMView, instance: Instance) -> AgentChannel | None:
        """The kestrel socket in the VM's directory."""
        self.asked.append(vm.name)
        return UnixSocketChannel(vm.runtime_dir / "agent.sock", exclusive=False)


def test_the_agent_channel_hook_is_asked_at_boot_and_at_re_adoption(host_manifest: dict[str, Any]) -> None:
    offers = OffersTheSocket()
    plugins = [("channel-less", ChannelLessHypervisor()), ("offers", offers)]
    with host_process_daemon(plugins=plugins, hypervisor="test-channel-less", stop_timeout=5) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        assert api.request("POST", "/api/v1/vms", {"name": "c1", "plugin": "hello-host"}).status == 201
        assert api.wait_for_status("c1", {"running"})["status"] == "running"
        assert offers.asked == ["c1"]
        api.restart()
        assert api.wait_for_status("c1", {"running"})["status"] == "running"
        assert offers.asked == ["c1", "c1"]
        assert api.request("GET", "/api/v1/vms/c1/agent/v1/health").status == 200


def test_a_vm_nobody_can_reach_is_not_booted(host_manifest: dict[str, Any]) -> None:
    with host_process_daemon(
        plugins=[("channel-less", ChannelLessHypervisor())], hypervisor="test-channel-less"
    ) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        answer = api.request("POST", "/api/v1/vms", {"name": "c2", "plugin": "hello-host"})
        assert answer.status == 500 and "kestrel cannot be reached" in answer.json()["error"]["message"]
        assert processes_mentioning(str(api.state_dir)) == []


class SpacedArgument:
    """Contributes a kernel argument with a space in it (two arguments to the guest, or a smuggled one)."""

    @hookimpl
    def volant_prepare_launch(self) -> LaunchAdditions:
        """A bad argument."""
        return LaunchAdditions(kernel_args=("x=1 volant.manifest=forged",))


def test_a_plugins_kernel_argument_is_checked_and_the_create_undone(host_manifest: dict[str, Any]) -> None:
    with host_process_daemon(plugins=[("spaced", SpacedArgument())]) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        answer = api.request("POST", "/api/v1/vms", {"name": "k1", "plugin": "hello-host"})
        assert answer.status == 500
        assert "plugin spaced gave the kernel argument" in answer.json()["error"]["message"]
        assert api.request("GET", "/api/v1/vms/k1").status == 404
        assert processes_mentioning(str(api.state_dir)) == []


class SpacedNetwork:
    """A network mode whose attachment gives the guest kernel an argument with a space in it."""

    def attach(self, vm: VMView) -> NetworkAttachment:
        """A bad argument."""
        return NetworkAttachment(kernel_args=("x=1 volant.manifest=forged",))

    def detach(self, vm: VMView) -> None:
        """Nothing to remove."""


class RegistersSpacedNetwork:
    """Registers the network mode ``spaced-net`` (:class:`SpacedNetwork`)."""

    @hookimpl
    def volant_network_modes(self) -> list[NetworkModeDescriptor]:
        """``spaced-net``."""
        return [NetworkModeDescriptor("spaced-net", factory=SpacedNetwork)]


def test_a_network_modes_kernel_argument_is_checked_naming_the_plugin(host_manifest: dict[str, Any]) -> None:
    with host_process_daemon(plugins=[("spaced-network", RegistersSpacedNetwork())]) as api:
        assert _failed_create_in_mode(api, host_manifest, "k6", "spaced-net") == (
            "plugin spaced-network gave the kernel argument 'x=1 volant.manifest=forged': kernel argument "
            "'x=1 volant.manifest=forged' must be non-empty printable ASCII without whitespace"
        )
        assert api.request("GET", "/api/v1/vms/k6").status == 404


class AddsToTheLaunch:
    """Adds one part the test-host-process hypervisor (capabilities adopt, test-only) cannot honour."""

    def __init__(self, additions: LaunchAdditions) -> None:
        self.additions = additions

    @hookimpl
    def volant_prepare_launch(self) -> LaunchAdditions:
        """The part."""
        return self.additions


@pytest.mark.parametrize(
    ("additions", "missing"),
    [
        (LaunchAdditions(disks=(DiskSpec(Path("/nonexistent/data.img")),)), "disks"),
        (
            LaunchAdditions(
                pci_devices=(PciDeviceSpec("0000:01:00.0", Path("/sys/bus/pci/devices/0000:01:00.0")),)
            ),
            "pci-passthrough",
        ),
        (LaunchAdditions(devices=("virtio-rng-pci",)), "raw-arguments"),
        (LaunchAdditions(extra_args=("-nodefaults",)), "raw-arguments"),
        (
            LaunchAdditions(disks=(DiskSpec(Path("/nonexistent/data.img")),), extra_args=("-S",)),
            "disks, raw-arguments",
        ),
    ],
    ids=["disk", "pci-device", "raw-device", "raw-argument", "disk-and-raw-argument"],
)
def test_a_launch_part_the_hypervisor_lacks_is_refused_naming_it_and_the_create_undone(
    host_manifest: dict[str, Any], additions: LaunchAdditions, missing: str
) -> None:
    with host_process_daemon(plugins=[("adds", AddsToTheLaunch(additions))]) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        answer = api.request("POST", "/api/v1/vms", {"name": "k2", "plugin": "hello-host"})
        assert answer.status == 500
        assert answer.json()["error"]["message"] == (
            f"vm 'k2': the launch needs {missing}, which hypervisor 'test-host-process' does not offer "
            "(a plugin added them in volant_prepare_launch?)"
        )
        assert api.request("GET", "/api/v1/vms/k2").status == 404
        assert processes_mentioning(str(api.state_dir)) == []


class UndeclaredTap:
    """TEST network mode ``undeclared-tap``: gives each VM a tap NIC without declaring ``tap-nics`` in
    ``requires`` (so only the launch check can stop it); attaches nothing on the host.
    """

    def __init__(self, context: object) -> None:
        self.context = context

    def attach(self, vm: VMView) -> NetworkAttachment:
        """One NIC."""
        return NetworkAttachment(nics=(NicSpec(tap="vtap-none", mac=vm.mac_address),))

    def detach(self, vm: VMView) -> None:
        """Nothing to undo."""


class RegistersUndeclaredTap:
    """Registers :class:`UndeclaredTap` as ``undeclared-tap``, and as ``declared-tap`` requiring
    ``tap-nics``.
    """

    @hookimpl
    def volant_network_modes(self) -> list[NetworkModeDescriptor]:
        """``undeclared-tap`` and ``declared-tap``."""
        return [
            NetworkModeDescriptor("undeclared-tap", factory=UndeclaredTap),
            NetworkModeDescriptor("declared-tap", factory=UndeclaredTap, requires=frozenset({"tap-nics"})),
        ]


def test_a_nic_the_hypervisor_cannot_attach_is_refused_naming_tap_nics(host_manifest: dict[str, Any]) -> None:
    with host_process_daemon(plugins=[("undeclared-tap", RegistersUndeclaredTap())]) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        config = {"network": {"mode": "undeclared-tap"}}
        answer = api.request("POST", "/api/v1/vms", {"name": "k3", "plugin": "hello-host", "config": config})
        assert answer.status == 500
        assert answer.json()["error"]["message"].startswith(
            "vm 'k3': the launch needs tap-nics, which hypervisor 'test-host-process' does not offer"
        )
        assert api.request("GET", "/api/v1/vms/k3").status == 404


def test_prepare_launch_returning_another_type_fails_the_create_naming_the_plugin(
    host_manifest: dict[str, Any],
) -> None:
    wrong = AddsToTheLaunch({"disks": []})  # type: ignore[arg-type]
    with host_process_daemon(plugins=[("returns-a-dict", wrong)]) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        answer = api.request("POST", "/api/v1/vms", {"name": "k4", "plugin": "hello-host"})
        assert answer.status == 500
        assert answer.json()["error"]["message"] == (
            "plugin returns-a-dict: volant_prepare_launch must return LaunchAdditions or None, "
            "got {'disks': []}"
        )
        assert api.request("GET", "/api/v1/vms/k4").status == 404


class StickyNetwork:
    """A network mode whose detach always fails (what it made on the host cannot be removed)."""

    def attach(self, vm: VMView) -> NetworkAttachment:
        """Nothing to create."""
        return NetworkAttachment()

    def detach(self, vm: VMView) -> None:
        """Fail."""
        raise RuntimeError(f"cannot detach {vm.name}")


class StickyAndBreaksTheLaunch:
    """Registers the network mode ``sticky`` (:class:`StickyNetwork`) and breaks every launch after
    the network is attached (its ``volant_prepare_launch`` answers the wrong type).
    """

    @hookimpl
    def volant_network_modes(self) -> list[NetworkModeDescriptor]:
        """``sticky``."""
        return [NetworkModeDescriptor("sticky", factory=StickyNetwork)]

    @hookimpl
    def volant_prepare_launch(self) -> str:
        """Not :class:`LaunchAdditions`."""
        return "no additions"


def test_an_undo_that_fails_in_a_failed_launch_is_reported_and_the_launch_error_kept(
    host_manifest: dict[str, Any],
) -> None:
    with host_process_daemon(plugins=[("sticky", StickyAndBreaksTheLaunch())]) as api:
        assert _failed_create_in_mode(api, host_manifest, "k5", "sticky") == (
            "plugin sticky: volant_prepare_launch must return LaunchAdditions or None, got 'no additions'"
        )
        info = {p["name"]: p for p in api.request("GET", "/api/v1/system/plugins").json()["plugins"]}
        assert info["sticky"]["status"] == "degraded"
        assert (
            "vm k5: detaching it from network mode 'sticky' failed (RuntimeError: cannot detach k5); "
            "what it held on the host may remain"
        ) in info["sticky"]["errors"]


def test_a_network_mode_needing_a_capability_the_hypervisor_lacks_is_refused_at_create(
    host_manifest: dict[str, Any],
) -> None:
    with host_process_daemon(plugins=[("undeclared-tap", RegistersUndeclaredTap())]) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        config = {"network": {"mode": "declared-tap"}}
        answer = api.request("POST", "/api/v1/vms", {"name": "k5", "plugin": "hello-host", "config": config})
        assert answer.status == 422
        error = answer.json()["error"]
        assert error["details"][0]["field"] == "network.mode"
        assert error["message"] == (
            "network.mode: network mode 'declared-tap' needs the hypervisor capability 'tap-nics', which "
            "hypervisor 'test-host-process' lacks (it offers: adopt, test-only); "
            "choose another hypervisor or drop it"
        )
        assert api.request("GET", "/api/v1/vms/k5").status == 404
