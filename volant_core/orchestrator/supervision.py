"""Supervising running VMMs: one thread per VMM waits for kestrel, watches its health and reports how
the VMM ended; crashed VMs are booted again when their restart policy says so.

A VM becomes ``running`` when kestrel first answers. A guest that stops answering is killed, and a
VMM nobody asked to stop is ``crashed`` when it exits non-zero or was killed, ``stopped`` when the
guest powered off. Everything that changes a VM's state holds that VM's lock; a VMM that an
operation stops or kills (under the lock) is no longer watched, so its end is not reported twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from volant_core.agent_client import AgentClient
from volant_core.errors import AgentError, NotFoundError, VolantError
from volant_core.events import EventType
from volant_core.launch import AgentChannel, Instance
from volant_core.orchestrator import health
from volant_core.orchestrator.context import OrchestratorContext
from volant_core.orchestrator.resources import HostResources
from volant_core.orchestrator.vmconfig import validate_config
from volant_core.vm import VMStatus

log = logging.getLogger(__name__)

#: A VM healthy for this long (seconds) has its count of automatic restarts reset.
STABLE_AFTER_S = 60.0


@dataclass
class _Handle:
    """A VMM process this daemon watches, and the client that talks to its agent."""

    instance: Instance
    client: AgentClient
    stopping: bool = False
    failure: str | None = None


class Supervisor:
    """The watched VMMs, their supervisor threads and the automatic restarts of crashed VMs.

    ``boot`` launches a VM's VMM again (its lock held); it is how a restart happens. ``resources``
    releases what a VM held on the host when its VMM ended on its own.
    """

    def __init__(
        self, context: OrchestratorContext, resources: HostResources, *, boot: Callable[[str], None]
    ) -> None:
        self._context = context
        self._resources = resources
        self._boot = boot
        self._handles: dict[str, _Handle] = {}
        self._restarts: dict[str, int] = {}  # consecutive automatic restarts, by VM
        self._pending: set[str] = set()  # VMs whose automatic restart is scheduled and not yet tried

    # ------------------------------------------------------------ for the orchestrator

    def watch(self, name: str, instance: Instance, channel: AgentChannel) -> None:
        """Start a supervisor thread for the VMM ``instance`` of VM ``name``, reaching its agent
        over ``channel``.
        """
        settings = self._context.settings
        client = AgentClient(
            channel, max_answer=settings.agent_max_answer, lane_wait=settings.agent_lane_wait
        )
        handle = _Handle(instance, client)
        self._handles[name] = handle
        threading.Thread(target=self._supervise, args=(name, handle), name=f"vm-{name}", daemon=True).start()

    def watches(self, name: str) -> bool:
        """Whether the VMM of VM ``name`` is watched (it was launched or adopted and has not ended)."""
        return name in self._handles

    def client(self, name: str) -> AgentClient | None:
        """The client of the agent of VM ``name``; None when its VMM is not watched."""
        handle = self._handles.get(name)
        return handle.client if handle is not None else None

    def stop(self, name: str) -> int | None:
        """Stop the watched VMM of VM ``name`` (gracefully first, killed after the stop timeout) and
        stop watching it; its exit status.
        """
        handle = self._handles[name]
        handle.stopping = True
        status = handle.instance.stop(self._context.settings.stop_timeout)
        self._handles.pop(name, None)
        return status

    def kill(self, name: str) -> None:
        """Kill the VMM of VM ``name`` if it is watched, and stop watching it."""
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.stopping = True
            handle.instance.kill()

    def forget_all(self) -> None:
        """Stop watching every VMM; they keep running."""
        self._handles.clear()

    def reset_restarts(self, name: str) -> None:
        """Forget the automatic restarts of VM ``name``: a pending one does not happen, and the
        restart policy counts again from zero.
        """
        self._restarts.pop(name, None)
        self._pending.discard(name)

    def restart_pending(self, name: str) -> bool:
        """Whether the crashed VM ``name`` has an automatic restart scheduled (ask with its lock held:
        a crash and the restart it schedules happen under it).
        """
        return name in self._pending

    def schedule_restart(self, name: str) -> None:
        """Restart the crashed VM ``name`` later if its restart policy says so."""
        record = self._context.store.vms.get_by_name(name)
        policy = validate_config(self._context.store.configs.current(record.id).config).restart_policy
        attempt = self._restarts.get(name, 0)
        delay = policy.delay(attempt)
        if delay is None:
            return
        self._restarts[name] = attempt + 1
        self._pending.add(name)
        timer = threading.Timer(delay, self._restart_crashed, args=(name, attempt + 1))
        timer.daemon = True
        timer.start()

    # ------------------------------------------------------------ supervisor threads

    def _supervise(self, name: str, handle: _Handle) -> None:
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
            )
            status = verdict.exit_status
            if verdict.reason:
                self._fail(name, handle, f"workload stopped answering: {verdict.reason}")
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

    def _vmm_exited(self, name: str, handle: _Handle, status: int | None) -> None:
        """Record the end of a VMM nobody asked to stop: ``stopped`` after a poweroff, else ``crashed``."""
        with self._context.locks(name):
            if self._handles.get(name) is not handle or handle.stopping:
                return
            del self._handles[name]
            record = self._context.store.vms.get_by_name(name)
            self._resources.release(
                self._context.views.view_of(record), self._context.views.booted_config(record)
            )
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
            self._context.plugins.calls.notify(
                "volant_vm_stopped", vm=self._context.views.get(name), exit_status=status
            )
            if crashed:
                self.schedule_restart(name)

    def _restart_crashed(self, name: str, attempt: int) -> None:
        """Boot a VM that is still crashed (nobody started, stopped or deleted it meanwhile)."""
        with self._context.locks(name):
            if self._restarts.get(name) == attempt:
                self._pending.discard(name)
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
            try:
                self._boot(name)
            except VolantError as err:
                self._context.transitions.set_status(
                    name, VMStatus.CRASHED, EventType.VM_CRASHED, f"restart failed: {err.message}"
                )
                self.schedule_restart(name)
