"""Deployments: a VM configuration and how many replicas of it should run.

Members are named ``<deployment>-<n>``. A reconcile pass, run periodically and
whenever something happens to a member, moves reality towards the wish:

* missing members are created at the lowest free indices; an index whose name a
  VM outside the deployment holds is skipped and reported (``status.skipped``);
* a crashed member is left to its restart policy; once the policy has given up
  (``never``: at once) a replacement is created at a free index, and the crashed
  member is kept, with its reason and console log, until its replacement runs;
* a member that fails (its create raised, or it crashed for good) is retried with
  exponential backoff, shown in ``status.failing``;
* surplus members are deleted, highest index first;
* after a configuration change, out-of-date members are replaced one at a time,
  the next only once every member runs again (a rolling update).

Creating a member (and booting it, which may download its boot media) runs in a
thread of its own, outside the pass lock: a slow member holds up no other
deployment, no pass and no DELETE. ``ready_replicas`` counts members in ``running``.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from volant_core.errors import (
    LimitValidationError,
    NotFoundError,
    ValidationError,
    VolantError,
    describe_exception,
)
from volant_core.events import Event, EventBus, EventType
from volant_core.orchestrator.member_failures import DeploymentState, MemberFailure, utcnow
from volant_core.settings import DEFAULT_MAX_REPLICAS, MAX_REPLICAS_BY_NAME, variable_of
from volant_core.store import GroupRecord, Store, VMRecord
from volant_core.vm import VMStatus, check_name

log = logging.getLogger(__name__)

#: Key, in a member's config metadata, of the deployment configuration it was created from.
REVISION_KEY = "volant.deployment.revision"
#: Seconds between two reconcile passes when nothing wakes the loop.
RECONCILE_INTERVAL_S = 5.0
#: Longest :meth:`Deployments.stop` waits for the loop, then for each member's boot in flight.
STOP_WAIT_S = 30.0
#: Longest member name: ``<deployment>-<n>`` must stay a valid VM name.
MAX_INDEX_DIGITS = len(str(MAX_REPLICAS_BY_NAME))
#: The events of a member that may leave its deployment short of running replicas.
_MEMBER_CHANGES = frozenset(
    {EventType.VM_CRASHED, EventType.VM_DELETED, EventType.VM_STOPPED, EventType.VM_RUNNING}
)
#: Why a member name is skipped, in the deployment's ``status.skipped``.
TAKEN_REASON = "a VM outside this deployment has this name; delete it to give the name back"


def revision_of(config: Mapping[str, Any]) -> str:
    """A short, stable digest of a deployment configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def member_index(group: str, vm_name: str) -> int | None:
    """``n`` for a member named ``<group>-<n>`` (n >= 1), else None."""
    prefix = f"{group}-"
    suffix = vm_name[len(prefix) :] if vm_name.startswith(prefix) else ""
    return int(suffix) if suffix.isdigit() and not suffix.startswith("0") else None


@dataclass(frozen=True)
class DeploymentView:
    """A deployment as the API shows it."""

    name: str
    replicas: int
    ready_replicas: int
    config: dict[str, Any]
    members: list[dict[str, Any]]
    status: dict[str, Any]
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; ``desired_replicas`` repeats ``replicas`` under the Go original's name."""
        return {
            "name": self.name,
            "replicas": self.replicas,
            "desired_replicas": self.replicas,
            "ready_replicas": self.ready_replicas,
            "config": self.config,
            "members": self.members,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class Members(Protocol):
    """What the deployment controller needs from the orchestrator."""

    def validate_template(self, template: Mapping[str, Any]) -> dict[str, Any]:
        """Check a member configuration; return its stored form."""
        ...

    def create_member(self, name: str, template: Mapping[str, Any], group_id: int) -> object:
        """Create and boot member ``name``."""
        ...

    def crash_is_final(self, name: str) -> bool:
        """Whether member ``name`` is crashed and its restart policy will not restart it."""
        ...

    def delete_vm(self, name: str) -> None:
        """Stop and remove a member."""
        ...


class Deployments:
    """Deployment CRUD plus the reconcile loop; a deployment has at most ``max_replicas`` replicas."""

    def __init__(
        self,
        store: Store,
        events: EventBus,
        members: Members,
        *,
        interval: float = RECONCILE_INTERVAL_S,
        max_replicas: int = DEFAULT_MAX_REPLICAS,
    ) -> None:
        self._store = store
        self._max_replicas = max_replicas
        self._events = events
        self._members = members
        self._interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pass_lock = threading.Lock()  # one pass or one DELETE at a time; never held across a boot
        self._state_lock = threading.Lock()  # guards _states, shared with the boot threads
        self._states: dict[int, DeploymentState] = {}  # by deployment id
        self._names: frozenset[str] = frozenset()  # the deployments the last pass saw
        self._thread: threading.Thread | None = None
        self._boots: set[threading.Thread] = set()  # members' boot threads still running

    # ------------------------------------------------------------------ API

    def create(self, name: str, replicas: int, config: Mapping[str, Any]) -> DeploymentView:
        """Record a deployment and wake the loop to create its members."""
        self._check_name(name)
        self._check_replicas(replicas)
        normalized = self._members.validate_template(config)
        record = self._store.groups.create(name, normalized, replicas)
        self._emit(EventType.DEPLOYMENT_CREATED, record, f"deployment created with {replicas} replicas")
        self.wake()
        return self.get(name)

    def list(self) -> list[DeploymentView]:
        """Every deployment, by name."""
        return [self._view(group) for group in self._store.groups.list()]

    def get(self, name: str) -> DeploymentView:
        """One deployment."""
        return self._view(self._store.groups.get(name))

    def update(
        self, name: str, *, replicas: int | None = None, config: Mapping[str, Any] | None = None
    ) -> DeploymentView:
        """Change the replica count and/or the configuration (rolled out member by member)."""
        if replicas is not None:
            self._check_replicas(replicas)
        normalized = self._members.validate_template(config) if config is not None else None
        record = self._store.groups.update(name, config=normalized, replicas=replicas)
        changes = []
        if replicas is not None:
            changes.append(f"replicas={replicas}")
        if normalized is not None:
            changes.append(f"revision={revision_of(normalized)}")
        self._emit(EventType.DEPLOYMENT_UPDATED, record, ", ".join(changes) or "no change")
        self.wake()
        return self.get(name)

    def delete(self, name: str) -> None:
        """Delete every member, then the deployment. A member still booting is deleted by its boot
        thread when the boot returns.
        """
        with self._pass_lock:
            record = self._store.groups.get(name)
            with self._state_lock:
                state = self._states.pop(record.id, DeploymentState())
                state.deleted = True
                booting = set(state.booting)
            for member in self._store.vms.list(group_id=record.id):
                if member.name not in booting:
                    self._delete_member(member.name)
            self._store.groups.delete(name)
        self._emit(EventType.DEPLOYMENT_DELETED, record, "deployment deleted")

    # ------------------------------------------------------------ the loop

    def start(self) -> None:
        """Run reconcile passes in a background thread."""
        self._thread = threading.Thread(target=self._loop, name="reconcile", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop, then wait for the members' boots it started (members keep running): none
        goes on creating a VM while the daemon stops.
        """
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT_S)
        with self._state_lock:
            boots = list(self._boots)
        for boot in boots:
            boot.join(timeout=STOP_WAIT_S)

    def wake(self) -> None:
        """Ask for a reconcile pass now."""
        self._wake.set()

    def on_event(self, event: Event) -> None:
        """Wake the loop when a member changed state (subscribed to the event bus).

        Events of VMs whose names no deployment the last pass saw could have made wake
        nothing: a pass per event of every standalone VM was most of a create's cost.
        """
        if event.type in _MEMBER_CHANGES and any(member_index(d, event.name or "") for d in self._names):
            self.wake()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._next_wait())
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.reconcile_all()
            except Exception:  # the loop must survive anything one pass meets
                log.exception("reconcile pass failed")

    def _next_wait(self) -> float:
        """Seconds until the next pass: the interval, or less when a member's backoff ends sooner."""
        now = utcnow()
        with self._state_lock:
            retries = [f.retry_at for s in self._states.values() for f in s.waiting()]
        # Retries already due wait for the interval: one that has no slot to fill must not spin the loop.
        soonest = min(((r - now).total_seconds() for r in retries if r > now), default=self._interval)
        return min(self._interval, soonest)

    def reconcile_all(self) -> None:
        """One pass over every deployment."""
        with self._pass_lock:
            groups = self._store.groups.list()
            self._names = frozenset(group.name for group in groups)
            for group in groups:
                try:
                    self._reconcile(group)
                except VolantError as err:
                    log.warning("deployment %s: %s", group.name, err.message)

    def _reconcile(self, group: GroupRecord) -> None:
        state = self._state_of(group.id)
        rows = sorted(
            (m for m in self._store.vms.list(group_id=group.id) if member_index(group.name, m.name)),
            key=lambda m: member_index(group.name, m.name) or 0,
        )
        with self._state_lock:
            booting = set(state.booting)
            known = {n for n, f in state.failures.items() if f.crashed}
        retired = [  # crashed for good: restart policy never, or given up
            m
            for m in rows
            if m.name not in booting
            and m.status == VMStatus.CRASHED
            and (m.name in known or self._members.crash_is_final(m.name))
        ]
        retired_names = {m.name for m in retired}
        live = [m for m in rows if m.name not in retired_names]
        self._note_crashes(group, state, retired)
        slots = len(live) + len(booting - {m.name for m in rows})
        removable = [m for m in live if m.name not in booting]
        for member in reversed(removable[max(len(removable) - (slots - group.replicas), 0) :]):
            self._delete_member(member.name)
            live.remove(member)
            slots -= 1
            self._emit(EventType.DEPLOYMENT_RECONCILED, group, f"removed {member.name}")
        self._retire(group, state, live, retired)
        self._fill(group, state, retired_names)
        self._roll(group, state, live)

    def _note_crashes(
        self, group: GroupRecord, state: DeploymentState, retired: builtins.list[VMRecord]
    ) -> None:
        """Record each member newly crashed for good (one event each); forget crashes that are over."""
        noted = []
        with self._state_lock:
            names = {m.name for m in retired}
            for name in [n for n, f in state.failures.items() if f.crashed and n not in names]:
                del state.failures[name]  # started again by hand, or deleted
            for member in retired:
                if member.name not in state.failures:
                    reason = member.status_reason or "crashed"
                    noted.append(state.record_failure(member.name, reason, crashed=True, now=utcnow()))
        for failure in noted:
            self._emit(
                EventType.DEPLOYMENT_RECONCILED,
                group,
                f"{failure.name} crashed ({failure.last_error}); kept until its replacement runs, "
                f"which boots at {failure.retry_at.isoformat()} (attempt {failure.attempts + 1})",
            )

    def _retire(
        self,
        group: GroupRecord,
        state: DeploymentState,
        live: builtins.list[VMRecord],
        retired: builtins.list[VMRecord],
    ) -> None:
        """Delete crashed members once every replica runs; while not, keep at most ``replicas`` of
        them (at least one), the newest, deleting only those already replaced.
        """
        with self._state_lock:
            for member in live:
                if member.status == VMStatus.RUNNING:
                    state.inherited.pop(member.name, None)  # a member ran: its backoff starts over
            if sum(m.status == VMStatus.RUNNING for m in live) >= group.replicas:
                doomed = retired
            else:
                replaced = [m for m in retired if not state.failures[m.name].waiting]
                extra = len(retired) - max(group.replicas, 1)
                doomed = sorted(replaced, key=lambda m: m.updated_at)[: max(extra, 0)]
            replaced_by = {m.name: state.failures.pop(m.name).replaced_by for m in doomed}
        for member in doomed:
            self._delete_member(member.name)
            self._emit(
                EventType.DEPLOYMENT_RECONCILED,
                group,
                f"removed crashed {member.name} (replaced by {replaced_by[member.name] or 'nothing'})",
            )

    def _fill(self, group: GroupRecord, state: DeploymentState, retired: set[str]) -> None:
        """Boot the missing members: failed ones whose backoff is over, then new ones at free indices.

        The members are counted under the state lock: a boot thread removes its failed member's row
        before it notes the failure under that lock, so each member is seen either booting or as
        it ended.
        """
        now = utcnow()
        foreign = {
            vm.name
            for vm in self._store.vms.list()
            if vm.group_id != group.id and member_index(group.name, vm.name)
        }
        skipped: builtins.list[str] = []
        boots: builtins.list[tuple[str, MemberFailure | None]] = []
        with self._state_lock:
            rows = {
                m.name for m in self._store.vms.list(group_id=group.id) if member_index(group.name, m.name)
            }
            missing = max(group.replicas - len((rows - retired) | state.booting), 0)
            state.skipped = {n: r for n, r in state.skipped.items() if n in foreign}
            for taken in state.waiting():
                if not taken.crashed and taken.name in foreign:
                    del state.failures[taken.name]  # its name was taken meanwhile
            waiting = state.waiting()
            for unwanted in waiting[missing:]:
                if not unwanted.crashed:
                    del state.failures[unwanted.name]  # not wanted any more (scaled down)
            waiting = state.waiting()
            used = rows | state.booting | {f.name for f in waiting if not f.crashed}
            wanted: builtins.list[tuple[str | None, MemberFailure | None]] = [
                (None if f.crashed else f.name, f) for f in waiting[:missing] if f.due(now)
            ]
            wanted += [(None, None)] * max(missing - len(waiting), 0)
            for name, failure in wanted:
                if name is None:
                    name = self._free_name(group.name, used, foreign, state, skipped)
                used.add(name)
                state.booting.add(name)
                state.inherited[name] = failure.attempts if failure else 0
                if failure is not None and failure.crashed:
                    failure.replaced_by = name
                boots.append((name, failure))
        for name in skipped:
            self._emit(EventType.DEPLOYMENT_RECONCILED, group, f"skipped {name}: {TAKEN_REASON}")
        revision = revision_of(group.config)
        for name, _ in boots:
            self._boot_in_background(group, state, name, revision)

    @staticmethod
    def _free_name(
        group: str, used: set[str], foreign: set[str], state: DeploymentState, skipped: builtins.list[str]
    ) -> str:
        """The member name at the lowest index neither used nor held by a VM outside the deployment
        (names skipped for the latter are noted in ``state`` and, when new, in ``skipped``).
        """
        index = 1
        while (name := f"{group}-{index}") in used or name in foreign:
            if name in foreign and name not in state.skipped:
                state.skipped[name] = TAKEN_REASON
                skipped.append(name)
            index += 1
        return name

    def _roll(self, group: GroupRecord, state: DeploymentState, live: builtins.list[VMRecord]) -> None:
        """Replace one out-of-date member, once all members run (a rolling update)."""
        with self._state_lock:
            if state.booting or state.failures:
                return
        current = self._store.vms.list(group_id=group.id)
        if any(m.status != VMStatus.RUNNING for m in current):
            return
        revision = revision_of(group.config)
        for member in live:
            if self._revision_of_member(member) != revision:
                self._emit(
                    EventType.DEPLOYMENT_RECONCILED,
                    group,
                    f"rolling out the new configuration: {member.name}",
                )
                self._delete_member(member.name)
                with self._state_lock:
                    state.booting.add(member.name)
                self._boot_in_background(group, state, member.name, revision)
                return

    def _boot_in_background(
        self, group: GroupRecord, state: DeploymentState, name: str, revision: str
    ) -> None:
        """Create and boot member ``name`` in a thread of its own (``name`` is in ``state.booting``)."""
        boot = threading.Thread(
            target=self._boot_tracked, args=(group, state, name, revision), name=f"member-{name}", daemon=True
        )
        with self._state_lock:
            self._boots.add(boot)
        boot.start()

    def _boot_tracked(self, group: GroupRecord, state: DeploymentState, name: str, revision: str) -> None:
        """:meth:`_boot_member`, in a thread :meth:`stop` waits for until it ends."""
        try:
            self._boot_member(group, state, name, revision)
        finally:
            with self._state_lock:
                self._boots.discard(threading.current_thread())

    def _boot_member(self, group: GroupRecord, state: DeploymentState, name: str, revision: str) -> None:
        """Create member ``name``; record the outcome (a failure backs off), then wake the loop."""
        error = None
        try:
            metadata = {**(group.config.get("metadata") or {}), REVISION_KEY: revision}
            self._members.create_member(name, {**group.config, "metadata": metadata}, group.id)
        except VolantError as err:
            error = err.message
        except Exception as err:  # a boot thread must report whatever stopped it
            log.exception("creating deployment member %s failed", name)
            error = describe_exception(err)
        with self._state_lock:
            state.booting.discard(name)
            deleted = state.deleted
            failure: MemberFailure | None = None
            if error is not None:
                failure = state.record_failure(name, error, crashed=False, now=utcnow())
            else:
                state.failures.pop(name, None)
        if deleted and error is None:
            self._delete_member(name)  # the deployment was deleted while this member booted
        elif failure is not None and not deleted:
            self._emit(
                EventType.DEPLOYMENT_RECONCILED,
                group,
                f"could not create {name} (attempt {failure.attempts}): {error}; "
                f"next attempt at {failure.retry_at.isoformat()}",
            )
        self.wake()

    def _delete_member(self, name: str) -> None:
        try:
            self._members.delete_vm(name)
        except NotFoundError:
            pass

    def _revision_of_member(self, member: VMRecord) -> str | None:
        config = self._store.configs.current(member.id).config
        return (config.get("metadata") or {}).get(REVISION_KEY)

    def _state_of(self, group_id: int) -> DeploymentState:
        """The controller's memory of deployment ``group_id`` (created on first use)."""
        with self._state_lock:
            return self._states.setdefault(group_id, DeploymentState())

    # ------------------------------------------------------------- helpers

    @staticmethod
    def _check_name(name: str) -> None:
        check_name(name)
        if len(f"{name}-{10**MAX_INDEX_DIGITS}") > 63:
            raise ValidationError(
                f"name: {name!r} leaves no room for member suffixes; use at most "
                f"{63 - MAX_INDEX_DIGITS - 2} characters",
                field="name",
            )

    def _check_replicas(self, replicas: int) -> None:
        """Refuse a replica count below 0 or over the limit (422 naming ``VOLANT_MAX_REPLICAS``)."""
        if replicas < 0:
            raise ValidationError("replicas: must be 0 or more", field="replicas")
        if replicas > self._max_replicas:
            setting = variable_of("max_replicas")
            raise LimitValidationError(
                f"replicas: {replicas} is over the limit of {self._max_replicas} replicas per deployment "
                f"({setting}); ask for fewer, or raise {setting} (at most {MAX_REPLICAS_BY_NAME})",
                field="replicas",
            )

    def _view(self, group: GroupRecord) -> DeploymentView:
        members = self._store.vms.list(group_id=group.id)
        with self._state_lock:
            status = self._states.get(group.id, DeploymentState()).status()
        return DeploymentView(
            name=group.name,
            replicas=group.replicas,
            ready_replicas=sum(1 for m in members if m.status == VMStatus.RUNNING),
            config=group.config,
            members=[
                {"name": m.name, "status": m.status, "status_reason": m.status_reason}
                for m in sorted(members, key=lambda m: member_index(group.name, m.name) or 0)
            ],
            status=status,
            created_at=group.created_at.isoformat(),
            updated_at=group.updated_at.isoformat(),
        )

    def _emit(self, event: EventType, group: GroupRecord, message: str) -> None:
        self._events.publish(
            Event(
                type=event,
                name=group.name,
                message=message,
                data={"deployment": group.name, "replicas": group.replicas},
            )
        )
