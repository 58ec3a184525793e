"""Deployments: a VM configuration and how many replicas of it should run.

Members are named ``<deployment>-<n>``. A reconcile pass, run periodically and
whenever something happens to a member, moves reality towards the wish:

* missing members are created at the lowest free indices;
* crashed members are replaced (deleted and created again under the same name);
* surplus members are deleted, highest index first;
* after a configuration change, out-of-date members are replaced one at a time,
  the next only once every member runs again (a rolling update).

``ready_replicas`` counts members in ``running``.
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

from volant_core.errors import LimitValidationError, NotFoundError, ValidationError, VolantError
from volant_core.events import Event, EventBus, EventType
from volant_core.settings import DEFAULT_MAX_REPLICAS, MAX_REPLICAS_BY_NAME, variable_of
from volant_core.store import GroupRecord, Store, VMRecord
from volant_core.vm import VMStatus, check_name

log = logging.getLogger(__name__)

#: Key, in a member's config metadata, of the deployment configuration it was created from.
REVISION_KEY = "volant.deployment.revision"
#: Seconds between two reconcile passes when nothing wakes the loop.
RECONCILE_INTERVAL_S = 5.0
#: Longest member name: ``<deployment>-<n>`` must stay a valid VM name.
MAX_INDEX_DIGITS = len(str(MAX_REPLICAS_BY_NAME))


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
        self._pass_lock = threading.Lock()
        self._thread: threading.Thread | None = None

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
        """Delete every member, then the deployment."""
        with self._pass_lock:
            record = self._store.groups.get(name)
            for member in self._store.vms.list(group_id=record.id):
                self._delete_member(member.name)
            self._store.groups.delete(name)
        self._emit(EventType.DEPLOYMENT_DELETED, record, "deployment deleted")

    # ------------------------------------------------------------ the loop

    def start(self) -> None:
        """Run reconcile passes in a background thread."""
        self._thread = threading.Thread(target=self._loop, name="reconcile", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop (members keep running)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def wake(self) -> None:
        """Ask for a reconcile pass now."""
        self._wake.set()

    def on_event(self, event: Event) -> None:
        """Wake the loop when a member changed state (subscribed to the event bus)."""
        if event.type in (
            EventType.VM_CRASHED,
            EventType.VM_DELETED,
            EventType.VM_STOPPED,
            EventType.VM_RUNNING,
        ):
            self.wake()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.reconcile_all()
            except Exception:  # the loop must survive anything one pass meets
                log.exception("reconcile pass failed")

    def reconcile_all(self) -> None:
        """One pass over every deployment."""
        with self._pass_lock:
            for group in self._store.groups.list():
                try:
                    self._reconcile(group)
                except VolantError as err:
                    log.warning("deployment %s: %s", group.name, err.message)

    def _reconcile(self, group: GroupRecord) -> None:
        members = {m.name: m for m in self._store.vms.list(group_id=group.id)}
        indexed = sorted(
            (member_index(group.name, n), m)
            for n, m in members.items()
            if member_index(group.name, n) is not None
        )
        revision = revision_of(group.config)
        for _, member in indexed:
            if member.status == VMStatus.CRASHED:
                self._replace(group, member, revision, "replacing crashed member")
        surplus = [m for _, m in indexed][group.replicas :]
        for member in reversed(surplus):
            self._delete_member(member.name)
            self._emit(EventType.DEPLOYMENT_RECONCILED, group, f"removed {member.name}")
        kept = [m for _, m in indexed][: group.replicas]
        taken = {member_index(group.name, m.name) for m in kept}
        index = 1
        while len(taken) < group.replicas:
            if index not in taken:
                self._create_member(group, index, revision)
                taken.add(index)
            index += 1
        self._roll(group, kept, revision)

    def _roll(self, group: GroupRecord, kept: builtins.list[VMRecord], revision: str) -> None:
        """Replace one out-of-date member, once all members run (a rolling update)."""
        current = self._store.vms.list(group_id=group.id)
        if any(m.status != VMStatus.RUNNING for m in current):
            return
        for member in kept:
            if self._revision_of_member(member) != revision:
                self._replace(group, member, revision, "rolling out the new configuration")
                return

    def _replace(self, group: GroupRecord, member: VMRecord, revision: str, why: str) -> None:
        index = member_index(group.name, member.name)
        assert index is not None
        self._emit(EventType.DEPLOYMENT_RECONCILED, group, f"{why}: {member.name}")
        self._delete_member(member.name)
        self._create_member(group, index, revision)

    def _create_member(self, group: GroupRecord, index: int, revision: str) -> None:
        metadata = {**(group.config.get("metadata") or {}), REVISION_KEY: revision}
        self._members.create_member(f"{group.name}-{index}", {**group.config, "metadata": metadata}, group.id)

    def _delete_member(self, name: str) -> None:
        try:
            self._members.delete_vm(name)
        except NotFoundError:
            pass

    def _revision_of_member(self, member: VMRecord) -> str | None:
        config = self._store.configs.current(member.id).config
        return (config.get("metadata") or {}).get(REVISION_KEY)

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
        return DeploymentView(
            name=group.name,
            replicas=group.replicas,
            ready_replicas=sum(1 for m in members if m.status == VMStatus.RUNNING),
            config=group.config,
            members=[
                {"name": m.name, "status": m.status}
                for m in sorted(members, key=lambda m: member_index(group.name, m.name) or 0)
            ],
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
