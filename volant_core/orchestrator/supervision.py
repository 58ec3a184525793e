"""Supervising running VMMs: one thread per VMM waits for kestrel, watches its health and reports how
the VMM ended; crashed VMs are booted again when their restart policy says so.

A VM becomes ``running`` when kestrel first answers. A guest whose agent stops answering is killed
and ``crashed``; a workload that fails its health check while kestrel answers is ``unhealthy``, and
the VM's ``on_unhealthy`` policy reports it, restarts the VM or stops it (powering it off
gracefully). A VMM nobody asked to stop is ``crashed`` when it exits non-zero or was killed,
``stopped`` when the guest powered off. Everything that changes a VM's state holds that VM's lock;
a VMM that an operation stops or kills (under the lock) is no longer watched, so its end is not
reported twice.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from volant_core.agent_client import AgentClient
from volant_core.errors import AgentError, NotFoundError, VolantError
from volant_core.events import EventType
from volant_core.launch import AgentChannel, Instance
from volant_core.metrics.tally import Tally
from volant_core.orchestrator import health
from volant_core.orchestrator.boot import REAP_TIMEOUT
from volant_core.orchestrator.context import OrchestratorContext
from volant_core.orchestrator.resources import HostResources
from volant_core.orchestrator.vmconfig import VMConfig, validate_config
from volant_core.threads import DaemonThreadPool
from volant_core.vm import VMStatus

log = logging.getLogger(__name__)

#: A VM healthy for this long (seconds) has its count of automatic restarts reset.
STABLE_AFTER_S = 60.0
#: Supervisor threads are never capped: every VMM is watched at once, however many run.
UNBOUNDED = sys.maxsize


@dataclass
class _Handle:
    """A VMM process this daemon watches, and the client that talks to its agent."""

    instance: Instance
    client: AgentClient
    stopping: bool = False
    failure: str | None = None


class Supervisor:
    """The watched VMMs, their supervisor threads and the automatic restarts of crashed VMs.

    ``boot`` launches a VM's VMM again (its lock held); it is how a restart happens. ``power_off``
    stops a VM gracefully (its lock held), recording the message it is given as the reason.
    ``resources`` releases what a VM held on the host when its VMM ended on its own;
    ``health_board`` is where the workload health of running VMs is recorded.
    """

    def __init__(
        self,
        context: OrchestratorContext,
        resources: HostResources,
        health_board: health.HealthBoard,
        *,
        boot: Callable[[str], object],
        power_off: Callable[[str, str], object],
    ) -> None:
        self._context = context
        self._resources = resources
        self._health = health_board
        self._boot = boot
        self._power_off = power_off
        self._threads = DaemonThreadPool(UNBOUNDED, "vm-supervisor")
        self._handles: dict[str, _Handle] = {}
        self._restarts: dict[str, int] = {}  # consecutive automatic restarts, by VM
        self._timers: dict[str, threading.Timer] = {}  # the restarts scheduled and not yet tried, by VM
        self._shut_down = False  # set by forget_all: no restart happens any more
        #: Automatic restarts begun (restart policy, ``on_unhealthy: restart``), for the metrics.
        self.restarts = Tally()

    # ------------------------------------------------------------ for the orchestrator

    def watch(self, name: str, instance: Instance, channel: AgentChannel) -> None:
        """Start supervising the VMM ``instance`` of VM ``name``, reaching its agent over ``channel``,
        in a supervisor thread (an idle one of an earlier VMM when there is one: a new thread is
        waited for until it runs, a few milliseconds on a busy host, in every create and start).
        """
        settings = self._context.settings
        client = AgentClient(
            channel, max_answer=settings.agent_max_answer, lane_wait=settings.agent_lane_wait
        )
        handle = _Handle(instance, client)
        self._handles[name] = handle
        self._threads.submit(self._supervise, name, handle)

    def watches(self, name: str) -> bool:
        """Whether the VMM of VM ``name`` is watched (it was launched or adopted and has not ended)."""
        return name in self._handles

    def client(self, name: str) -> AgentClient | None:
        """The client of the agent of VM ``name``; None when its VMM is not watched."""
        handle = self._handles.get(name)
        return handle.client if handle is not None else None

    def stop(self, name: str, *, force: bool = False) -> int | None:
        """Stop the watched VMM of VM ``name`` (gracefully first, killed after the stop timeout; with
        ``force`` killed at once) and stop watching it; its exit status.
        """
        handle = self._handles[name]
        handle.stopping = True
        if force:
            handle.instance.kill()
            status = handle.instance.wait(REAP_TIMEOUT)
        else:
            status = handle.instance.stop(self._context.settings.stop_timeout)
        self._forget(name)
        return status

    def kill(self, name: str) -> None:
        """Kill the VMM of VM ``name`` if it is watched, and stop watching it."""
        handle = self._handles.get(name)
        if handle is not None:
            self._forget(name)
            handle.stopping = True
            handle.instance.kill()

    def kill_now(self, name: str) -> None:
        """Kill the watched VMM of VM ``name`` without waiting for its lock (a graceful stop that
        holds it then ends at once); whoever holds or next takes the lock records the stop.
        """
        handle = self._handles.get(name)
        if handle is not None:
            handle.stopping = True
            handle.instance.kill()

    def forget_all(self) -> None:
        """Stop watching every VMM (they keep running) and cancel the automatic restarts still to
        come (the daemon stops); idle supervisor threads end.
        """
        self._shut_down = True
        for name in list(self._handles):
            self._forget(name)
        for timer in list(self._timers.values()):
            timer.cancel()  # a restart due after the daemon stopped would boot against a closed store
        self._timers.clear()
        self._threads.shutdown()

    def reset_restarts(self, name: str) -> None:
        """Forget the automatic restarts of VM ``name``: a pending one does not happen, and the
        restart policy counts again from zero.
        """
        self._restarts.pop(name, None)
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def restart_pending(self, name: str) -> bool:
        """Whether the crashed VM ``name`` has an automatic restart scheduled (ask with its lock held:
        a crash and the restart it schedules happen under it).
        """
        return name in self._timers

    def schedule_restart(self, name: str) -> None:
        """Restart the crashed VM ``name`` later if its restart policy says so."""
        policy = self._current_config(name).restart_policy
        attempt = self._restarts.get(name, 0)
        delay = policy.delay(attempt)
        if delay is None:
            return
        self._restarts[name] = attempt + 1
        timer = threading.Timer(delay, self._restart_crashed, args=(name, attempt + 1))
        timer.daemon = True
        self._timers[name] = timer
        timer.start()

    # ------------------------------------------------------------ supervisor threads

    def _supervise(self, name: str, handle: _Handle) -> None:
        """Run :meth:`_watch_vmm` in a pool thread named after the VM while it does; a failure is
        logged (the pool would keep it in a future nobody reads).
        """
        thread = threading.current_thread()
        idle_name, thread.name = thread.name, f"vm-{name}"
        try:
            self._watch_vmm(name, handle)
        except Exception:
            log.exception("supervising vm %s failed", name)
        finally:
            thread.name = idle_name

    def _watch_vmm(self, name: str, handle: _Handle) -> None:
        """Wait for the agent (-> running), watch its health, then handle the VMM's exit."""
        status = None
        if self._await_agent(name, handle):
            verdict = health.watch(
                handle.instance,
                handle.client,
                interval=self._context.settings.health_interval,
                failures_allowed=self._context.settings.health_failures,
                stable_after=STABLE_AFTER_S,
                on_stable=lambda: self._restarts.pop(name, None),
                on_health=lambda reason: self._health_changed(name, handle, reason),
            )
            status = verdict.exit_status
            if verdict.reason:
                self._fail(name, handle, f"guest agent dead: {verdict.reason}")
        if status is None:
            status = handle.instance.wait()
        self._vmm_exited(name, handle, status)

    def _await_agent(self, name: str, handle: _Handle) -> bool:
        """Wait until kestrel is healthy and mark the VM running; False if it never got there."""
        try:
            answer = handle.client.wait_healthy(
                self._context.settings.boot_timeout, alive=handle.instance.alive
            )
        except AgentError as err:
            self._fail(name, handle, f"guest agent never became healthy: {err.message}")
            return False
        with self._context.locks(name):
            if self._handles.get(name) is not handle or handle.stopping:
                return False
            status = self._context.store.vms.get_by_name(name).status
            if status != VMStatus.RUNNING:  # adopted VMs already are
                self._context.transitions.set_status(
                    name, VMStatus.RUNNING, EventType.VM_RUNNING, "agent healthy", agent=answer
                )
        return True

    def _fail(self, name: str, handle: _Handle, reason: str) -> None:
        """Kill a VMM whose guest is not healthy; its exit is then reported as a crash with ``reason``."""
        with self._context.locks(name):
            if self._handles.get(name) is handle and not handle.stopping:
                handle.failure = reason
                handle.instance.kill()

    def _health_changed(self, name: str, handle: _Handle, reason: str | None) -> None:
        """Record that the workload of the VMM ``handle`` became unhealthy for ``reason`` (healthy
        again with None), publish it, and apply the VM's ``on_unhealthy`` policy.
        """
        with self._context.locks(name):
            if self._handles.get(name) is not handle or handle.stopping:
                return
            self._health.mark(name, reason)
            record = self._context.store.vms.get_by_name(name)
            if reason is None:
                self._context.transitions.emit(EventType.VM_HEALTHY, record, "workload healthy again")
                return
            self._context.transitions.emit(EventType.VM_UNHEALTHY, record, reason)
            config = self._current_config(name)
            if config.on_unhealthy == "report":
                return
            attempt = self._restarts.get(name, 0)
            if config.on_unhealthy == "restart" and attempt < config.restart_policy.max_restarts:
                log.info("restarting unhealthy vm %s (attempt %d): %s", name, attempt + 1, reason)
                self._power_off(name, f"restarting (on_unhealthy: restart): {reason}")
                self._restarts[name] = attempt + 1
                self._boot_again(name)
                return
            if config.on_unhealthy == "restart":
                reason += f"; still unhealthy after {attempt} restarts (restart_policy.max_restarts)"
            self._power_off(name, f"stopped (on_unhealthy: {config.on_unhealthy}): {reason}")

    def _current_config(self, name: str) -> VMConfig:
        """The current configuration of VM ``name``."""
        record = self._context.store.vms.get_by_name(name)
        return validate_config(self._context.store.configs.current(record.id).config)

    def _forget(self, name: str) -> None:
        """Stop watching VM ``name``'s VMM; its workload health is no longer known."""
        self._handles.pop(name, None)
        self._health.mark(name, None)

    def _vmm_exited(self, name: str, handle: _Handle, status: int | None) -> None:
        """Record the end of a VMM nobody asked to stop: ``stopped`` after a poweroff, else ``crashed``."""
        with self._context.locks(name):
            if self._handles.get(name) is not handle or handle.stopping:
                return
            self._forget(name)
            record = self._context.store.vms.get_by_name(name)
            self._resources.release(*self._context.views.view_and_booted(record))
            crashed = bool(handle.failure) or status != 0
            if crashed:
                reason = handle.failure or f"VMM exited with status {status}"
                self._context.transitions.set_status(
                    name, VMStatus.CRASHED, EventType.VM_CRASHED, reason, pid=None, exit_status=status
                )
            else:
                self._context.transitions.set_status(
                    name, VMStatus.STOPPED, EventType.VM_STOPPED, "guest powered off", pid=None
                )
            calls = self._context.plugins.calls
            if calls.has_listeners("volant_vm_stopped"):
                calls.notify("volant_vm_stopped", vm=self._context.views.get(name), exit_status=status)
            if crashed:
                self.schedule_restart(name)

    def _restart_crashed(self, name: str, attempt: int) -> None:
        """Boot a VM that is still crashed (nobody started, stopped or deleted it meanwhile)."""
        with self._context.locks(name):
            if self._shut_down:
                return
            if self._restarts.get(name) == attempt:
                self._timers.pop(name, None)
            try:
                record = self._context.store.vms.get_by_name(name)
            except NotFoundError:
                return
            if (
                record.status != VMStatus.CRASHED
                or name in self._handles
                or self._restarts.get(name) != attempt
            ):
                return
            log.info("restarting crashed vm %s (attempt %d)", name, attempt)
            self._boot_again(name)

    def _boot_again(self, name: str) -> None:
        """Boot VM ``name`` for an automatic restart (its lock held); a failed boot is a crash,
        which its restart policy may retry.
        """
        self.restarts.add()
        try:
            self._boot(name)
        except VolantError as err:
            self._context.transitions.set_status(
                name, VMStatus.CRASHED, EventType.VM_CRASHED, f"restart failed: {err.message}"
            )
            self.schedule_restart(name)
