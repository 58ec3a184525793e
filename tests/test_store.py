"""The SQLite store, on real database files: migrations, pragmas, constraints, repositories, threads."""

from __future__ import annotations

import importlib
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import peewee
import pytest

from volant_core.errors import ConflictError, NotFoundError, StoreUnavailableError, ValidationError
from volant_core.store import Store, VMRecord, open_store
from volant_core.store.database import WRITE_WAIT_S, connect
from volant_core.store.idempotency import KeySlot
from volant_core.store.migrate import Migration, applied_versions, discover, migrate
from volant_core.store.models import MODELS, utcnow
from volant_core.testing.store_faults import database_locked

TABLES = {
    "schema_migrations",
    "vms",
    "vm_configs",
    "vm_config_history",
    "plugins",
    "ip_allocations",
    "vm_groups",
    "events",
    "idempotency_keys",
    "vm_changes",
}
ISO_UTC_MICROS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the test database lives (its directory does not exist yet)."""
    return tmp_path / "state" / "volant.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    """A freshly migrated store."""
    store = open_store(db_path)
    yield store
    store.close()


def new_vm(store: Store, name: str, **overrides: Any) -> VMRecord:
    """Create a VM with unique defaults derived from ``name``."""
    index = sum(name.encode()) * 1000 + len(store.vms.list())
    fields: dict[str, Any] = {
        "name": name,
        "status": "pending",
        "runtime": "pyhttp",
        "plugin": "pyhttp",
        "hypervisor": "qemu",
        "mac_address": f"02:00:{index >> 16 & 0xFF:02x}:{index >> 8 & 0xFF:02x}:{index & 0xFF:02x}:01",
        "vsock_cid": store.vms.next_vsock_cid(),
        "cpu_cores": 1,
        "memory_mb": 256,
        "runtime_dir": Path("/run/volant/vms") / name,
    }
    return store.vms.create(**(fields | overrides))


def raw(db_path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run ``sql`` on a separate plain sqlite3 connection (what another process would see)."""
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql, params).fetchall()


# --------------------------------------------------------------------------
# Opening, migrations, pragmas
# --------------------------------------------------------------------------


def test_open_creates_directory_tables_and_records_migrations(store: Store, db_path: Path) -> None:
    assert db_path.is_file()
    assert TABLES <= set(store.db.get_tables())
    rows = raw(db_path, "SELECT version, name, applied_at FROM schema_migrations")
    assert [(version, name) for version, name, _ in rows] == [(m.version, m.name) for m in discover()]
    assert ISO_UTC_MICROS.fullmatch(rows[0][2])


def test_reopen_applies_nothing(store: Store, db_path: Path) -> None:
    before = raw(db_path, "SELECT * FROM schema_migrations")
    store.close()

    again = open_store(db_path)

    assert migrate(again.db) == []
    assert raw(db_path, "SELECT * FROM schema_migrations") == before
    again.close()


def test_migrations_are_discovered_in_order() -> None:
    migrations = discover()

    assert [m.version for m in migrations] == sorted(m.version for m in migrations)
    assert (migrations[0].version, migrations[0].name) == (1, "initial")


def test_failed_migration_leaves_nothing_behind(store: Store) -> None:
    def broken(db: peewee.Database) -> None:
        db.execute_sql("CREATE TABLE half_done (id INTEGER)")
        raise RuntimeError("boom")

    def works(db: peewee.Database) -> None:
        db.execute_sql("CREATE TABLE later (id INTEGER)")

    released = applied_versions(store.db)
    broken_version, works_version = released[-1] + 1, released[-1] + 2
    with pytest.raises(RuntimeError, match="boom"):
        migrate(
            store.db, [Migration(broken_version, "broken", broken), Migration(works_version, "works", works)]
        )

    assert "half_done" not in store.db.get_tables()
    assert applied_versions(store.db) == released
    assert migrate(store.db, [Migration(works_version, "works", works)]) == [works_version]
    assert applied_versions(store.db) == [*released, works_version]


def test_models_match_the_migrated_schema(store: Store) -> None:
    for model in MODELS:
        columns = {column.name for column in store.db.get_columns(model._meta.table_name)}
        fields = {field.column_name for field in model._meta.sorted_fields}
        assert fields == columns, model.__name__


def test_applied_config_migration_fills_in_each_vms_current_version(db_path: Path) -> None:
    now = "2025-01-01T00:00:00.000000+00:00"
    store = Store(connect(db_path))
    migrate(store.db, [m for m in discover() if m.version == 1])
    store.db.execute_sql(
        "INSERT INTO vms (name, status, runtime, plugin, hypervisor, mac_address, vsock_cid, cpu_cores,"
        " memory_mb, runtime_dir, created_at, updated_at) VALUES"
        " ('old', 'running', 'r', 'p', 'qemu', '02:00:00:00:00:01', 3, 1, 256, '/run/x', ?, ?)",
        (now, now),
    )
    store.db.execute_sql("INSERT INTO vm_configs VALUES (1, '{}', 4, ?)", (now,))

    migrate(store.db)

    assert store.vms.get_by_name("old").config_version == 4
    assert store.vms.update("old", config_version=5).config_version == 5
    store.close()


def test_scoped_idempotency_migration_keeps_the_keys_stored_before(db_path: Path) -> None:
    now = utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")  # a key stored just before the upgrade
    store = Store(connect(db_path))
    migrate(store.db, [m for m in discover() if m.version <= 5])
    store.db.execute_sql(
        "INSERT INTO idempotency_keys VALUES ('old', 'POST /api/v1/vms', 'd', 201, '{}', ?)", (now,)
    )

    migrate(store.db)

    held = store.idempotency.claim(KeySlot("", "POST /api/v1/vms", "old"), "d")
    assert held is not None and held.status == 201
    store.close()


@pytest.mark.parametrize(
    ("pragma", "expected"),
    [("journal_mode", "wal"), ("foreign_keys", 1), ("busy_timeout", 5000), ("synchronous", 1)],
)
def test_pragmas_are_active_in_every_thread(store: Store, pragma: str, expected: object) -> None:
    seen: list[object] = []

    def read() -> None:
        seen.append(store.db.execute_sql(f"PRAGMA {pragma}").fetchone()[0])
        store.close()

    read()
    worker = threading.Thread(target=read)
    worker.start()
    worker.join()

    assert seen == [expected, expected]


def test_transaction_takes_the_write_lock_at_once(store: Store, db_path: Path) -> None:
    other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        with store.transaction():
            store.events.latest_id()
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_transactions_nest_and_roll_back_together(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        new_vm(store, "outer")
        with store.transaction():
            new_vm(store, "inner")
        raise RuntimeError("abort")

    assert store.vms.list() == []


def test_inner_failure_rolls_back_only_the_savepoint(store: Store) -> None:
    with store.transaction():
        new_vm(store, "kept")
        with pytest.raises(ConflictError):
            new_vm(store, "kept")

    assert [vm.name for vm in store.vms.list()] == ["kept"]


# --------------------------------------------------------------------------
# VMs
# --------------------------------------------------------------------------


def test_vm_create_get_list_update_delete(store: Store, db_path: Path) -> None:
    created = new_vm(store, "web-1", ip_address="10.0.0.5", kernel_cmdline="console=ttyS0")

    assert created.id > 0 and created.status == "pending"
    assert created.created_at == created.updated_at and created.created_at.utcoffset() is not None
    assert created.runtime_dir == Path("/run/volant/vms/web-1")
    assert store.vms.get_by_name("web-1") == created
    assert ISO_UTC_MICROS.fullmatch(raw(db_path, "SELECT created_at FROM vms")[0][0])

    updated = store.vms.update("web-1", status="running", pid=4242, serial_socket=Path("/run/s.sock"))

    assert (updated.status, updated.pid, updated.serial_socket) == ("running", 4242, Path("/run/s.sock"))
    assert updated.updated_at > created.updated_at and updated.created_at == created.created_at
    assert store.vms.update("web-1", pid=None).pid is None
    assert store.vms.update("web-1", serial_socket=None).serial_socket is None  # no socket, not "None"
    assert raw(db_path, "SELECT serial_socket, console_log FROM vms WHERE name = 'web-1'") == [(None, None)]

    new_vm(store, "web-2")
    assert [vm.name for vm in store.vms.list()] == ["web-1", "web-2"]
    assert store.vms.count() == 2

    store.vms.delete("web-1")
    with pytest.raises(NotFoundError, match="web-1"):
        store.vms.get_by_name("web-1")


def test_vm_count_status_and_totals_of_holding_vms(store: Store) -> None:
    assert store.vms.count() == 0
    assert store.vms.totals(["cpu_cores", "memory_mb"], statuses=["running"], excluding="") == (
        0,
        {"cpu_cores": 0, "memory_mb": 0},
    )
    new_vm(store, "a", status="running", cpu_cores=2, memory_mb=512)
    new_vm(store, "b", status="starting", cpu_cores=1, memory_mb=256)
    new_vm(store, "c", status="stopped", cpu_cores=4, memory_mb=1024)

    assert store.vms.count() == 3
    assert store.vms.status_of("b") == "starting"
    with pytest.raises(NotFoundError, match="nope"):
        store.vms.status_of("nope")
    holding = ["running", "starting"]
    assert store.vms.totals(["cpu_cores", "memory_mb"], statuses=holding, excluding="") == (
        2,
        {"cpu_cores": 3, "memory_mb": 768},
    )
    assert store.vms.totals(["memory_mb"], statuses=holding, excluding="a") == (1, {"memory_mb": 256})


@pytest.mark.parametrize("column", ["name", "mac_address", "vsock_cid", "ip_address"])
def test_vm_duplicates_conflict(store: Store, column: str) -> None:
    first = new_vm(store, "a", ip_address="10.0.0.2")

    duplicate: dict[str, Any] = {
        "name": "b",
        "mac_address": "02:00:00:00:00:99",
        "vsock_cid": 99,
        "ip_address": None,
    }
    duplicate[column] = getattr(first, column)

    with pytest.raises(ConflictError) as caught:
        new_vm(store, **duplicate)

    assert caught.value.field == column
    assert caught.value.message == f"vm with {column} {getattr(first, column)!r} already exists"


def test_vms_without_ip_coexist(store: Store, db_path: Path) -> None:
    new_vm(store, "vsock-1")
    new_vm(store, "vsock-2", ip_address="")
    new_vm(store, "vsock-3")
    store.vms.update("vsock-3", ip_address="")

    assert [vm.ip_address for vm in store.vms.list()] == [None, None, None]
    assert raw(db_path, "SELECT COUNT(*) FROM vms WHERE ip_address IS NULL") == [(3,)]


def test_vm_checks_refuse_bad_values(store: Store) -> None:
    with pytest.raises(ValidationError, match="cpu_cores"):
        new_vm(store, "zero", cpu_cores=0)


def test_a_missing_required_value_is_refused_naming_its_field(store: Store) -> None:
    with pytest.raises(ValidationError, match=r"^version: required for plugin$") as refused:
        store.runtimes.upsert("pyhttp", None, {"name": "pyhttp"})  # type: ignore[arg-type]
    assert refused.value.field == "version"
    assert store.runtimes.list() == []


def test_vm_update_refuses_unknown_columns_and_missing_vms(store: Store) -> None:
    new_vm(store, "a")

    # A programming error, but its message names every column, sorted, for the developer who reads it.
    with pytest.raises(TypeError) as refused:
        store.vms.update("a", plugin="other", created_at="2020-01-01T00:00:00Z")
    assert str(refused.value) == "VM columns that cannot be updated: created_at, plugin"
    assert store.vms.get_by_name("a").plugin == "pyhttp"
    with pytest.raises(NotFoundError, match=r"^vm 'ghost' not found$"):
        store.vms.update("ghost", status="running")
    with pytest.raises(NotFoundError, match=r"^vm 'ghost' not found$"):
        store.vms.get_by_name("ghost")
    with pytest.raises(NotFoundError, match=r"^vm 'ghost' not found$"):
        store.vms.delete("ghost")


def test_vm_in_unknown_group_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="deployment id 99"):
        new_vm(store, "orphan", group_id=99)
    new_vm(store, "a", ip_address="10.0.0.2")
    new_vm(store, "b")

    with pytest.raises(NotFoundError) as missing:
        store.vms.update("a", group_id=98)
    with pytest.raises(ConflictError) as taken:
        store.vms.update("b", ip_address="10.0.0.2")

    assert missing.value.message == "deployment id 98 does not exist"
    assert (taken.value.message, taken.value.field) == (
        "vm with ip_address '10.0.0.2' already exists",
        "ip_address",
    )
    assert store.vms.get_by_name("a").group_id is None and store.vms.get_by_name("b").ip_address is None


def test_next_vsock_cid_fills_gaps_from_three(store: Store) -> None:
    assert store.vms.next_vsock_cid() == 3
    for name in ("a", "b", "c"):
        new_vm(store, name)
    store.vms.delete("b")

    assert store.vms.next_vsock_cid() == 4
    new_vm(store, "d")
    assert store.vms.next_vsock_cid() == 6


# --------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------


def test_config_versions_increase_with_history(store: Store) -> None:
    vm = new_vm(store, "a")

    first = store.configs.put(vm.id, {"resources": {"cpu_cores": 1}})
    second = store.configs.put(vm.id, {"resources": {"cpu_cores": 2}})
    third = store.configs.put(vm.id, {"resources": {"cpu_cores": 4}})

    assert [first.version, second.version, third.version] == [1, 2, 3]
    assert store.configs.current(vm.id) == third
    assert [c.version for c in store.configs.history(vm.id)] == [3, 2, 1]
    assert [c.version for c in store.configs.history(vm.id, limit=2)] == [3, 2]
    assert store.configs.get_version(vm.id, 1).config == {"resources": {"cpu_cores": 1}}
    with pytest.raises(NotFoundError):
        store.configs.get_version(vm.id, 9)


def test_a_kept_history_holds_the_newest_versions_and_the_booted_one_of_that_vm_only(store: Store) -> None:
    """``put(keep=N)`` (what ``VOLANT_CONFIG_HISTORY`` sets) prunes that VM's older versions in the
    same write, but never the version the VM last booted with, nor another VM's versions.
    """
    booted, other = new_vm(store, "a"), new_vm(store, "b")
    for cores in (1, 2, 3):
        store.configs.put(other.id, {"resources": {"cpu_cores": cores}})
    store.configs.put(booted.id, {"resources": {"cpu_cores": 1}})
    store.vms.update("a", config_version=1)
    for cores in (2, 3, 4, 5):
        store.configs.put(booted.id, {"resources": {"cpu_cores": cores}}, keep=2)

    assert [c.version for c in store.configs.history(booted.id)] == [5, 4, 1]
    assert [c.version for c in store.configs.history(other.id)] == [3, 2, 1]


def test_config_of_missing_vm(store: Store) -> None:
    with pytest.raises(NotFoundError, match=r"^vm id 42 does not exist$"):
        store.configs.put(42, {})
    with pytest.raises(NotFoundError, match=r"^vm id 42 has no configuration$"):
        store.configs.current(42)


def test_deleting_a_vm_cascades_to_config_history_and_lease(store: Store, db_path: Path) -> None:
    vm = new_vm(store, "a", ip_address="10.0.0.9")
    store.configs.put(vm.id, {"v": 1})
    store.configs.put(vm.id, {"v": 2})
    store.ips.lease(vm.id, "10.0.0.9")
    store.events.append("vm.created", {"name": "a"}, vm_name="a")

    store.vms.delete("a")

    with pytest.raises(NotFoundError):
        store.configs.current(vm.id)
    assert store.configs.history(vm.id) == []
    assert store.ips.leased() == []
    assert raw(db_path, "SELECT COUNT(*) FROM vm_config_history") == [(0,)]
    assert [event.vm_name for event in store.events.since(0)] == ["a"]


# --------------------------------------------------------------------------
# Plugins
# --------------------------------------------------------------------------


def test_plugin_upsert_get_list_toggle_delete(store: Store) -> None:
    installed = store.runtimes.upsert("pyhttp", "1.0", {"name": "pyhttp", "version": "1.0"})
    store.runtimes.upsert("caddy", "2.0", {"name": "caddy"})

    upgraded = store.runtimes.upsert("pyhttp", "1.1", {"name": "pyhttp", "version": "1.1"})

    assert (upgraded.id, upgraded.installed_at) == (installed.id, installed.installed_at)
    assert (upgraded.version, upgraded.manifest["version"], upgraded.enabled) == ("1.1", "1.1", True)
    assert upgraded.updated_at > installed.updated_at
    assert [p.name for p in store.runtimes.list()] == ["caddy", "pyhttp"]
    assert store.runtimes.set_enabled("pyhttp", False).enabled is False
    assert store.runtimes.get("pyhttp").enabled is False

    store.runtimes.delete("pyhttp")

    with pytest.raises(NotFoundError, match="pyhttp"):
        store.runtimes.get("pyhttp")
    with pytest.raises(NotFoundError, match="'pyhttp'"):
        store.runtimes.set_enabled("pyhttp", True)
    with pytest.raises(NotFoundError, match=r"^plugin 'pyhttp' is not installed$"):
        store.runtimes.delete("pyhttp")


def test_disabling_one_plugin_touches_only_that_one(store: Store) -> None:
    store.runtimes.upsert("caddy", "2.0", {"name": "caddy"})
    before = store.runtimes.upsert("pyhttp", "1.0", {"name": "pyhttp"})

    disabled = store.runtimes.set_enabled("pyhttp", False)

    assert store.runtimes.get("caddy").enabled is True
    assert disabled.updated_at > before.updated_at


# --------------------------------------------------------------------------
# IP leases
# --------------------------------------------------------------------------


def test_leases_in_numeric_order_and_release(store: Store) -> None:
    vms = [new_vm(store, f"vm-{i}") for i in range(4)]
    for vm, ip in zip(vms, ["10.0.0.100", "10.0.0.9", "10.0.0.11", "10.0.0.10"], strict=True):
        store.ips.lease(vm.id, ip)

    assert [lease.ip_address for lease in store.ips.leased()] == [
        "10.0.0.9",
        "10.0.0.10",
        "10.0.0.11",
        "10.0.0.100",
    ]
    assert store.ips.release(vms[0].id) == "10.0.0.100"
    assert store.ips.release(vms[0].id) is None
    assert len(store.ips.leased()) == 3


def test_lease_conflicts(store: Store) -> None:
    a, b = new_vm(store, "a"), new_vm(store, "b")
    store.ips.lease(a.id, "10.0.0.2")

    with pytest.raises(ConflictError, match=r"^IP lease with ip_address '10\.0\.0\.2' already exists$"):
        store.ips.lease(b.id, "10.0.0.2")
    with pytest.raises(ConflictError, match="vm_id"):
        store.ips.lease(a.id, "10.0.0.3")
    with pytest.raises(NotFoundError, match="vm id 77"):
        store.ips.lease(77, "10.0.0.4")
    with pytest.raises(ValidationError, match="IPv4") as invalid:
        store.ips.lease(b.id, "10.0.0.256")
    assert invalid.value.field == "ip_address"


# --------------------------------------------------------------------------
# Deployments
# --------------------------------------------------------------------------


def test_group_crud(store: Store) -> None:
    group = store.groups.create("web", {"plugin": "caddy"}, replicas=2)

    assert store.groups.get("web") == group
    scaled = store.groups.update("web", replicas=5)
    assert (scaled.replicas, scaled.config) == (5, {"plugin": "caddy"})
    assert store.groups.update("web", config={"plugin": "nginx"}).config == {"plugin": "nginx"}
    with pytest.raises(ConflictError, match=r"^deployment with name 'web' already exists$") as taken:
        store.groups.create("web", {}, replicas=1)
    assert taken.value.field == "name"
    with pytest.raises(ValidationError, match=r"invalid deployment: CHECK constraint failed: replicas >= 0"):
        store.groups.update("web", replicas=-1)
    assert [g.name for g in store.groups.list()] == ["web"]

    store.groups.delete("web")

    with pytest.raises(NotFoundError, match="web"):
        store.groups.get("web")
    with pytest.raises(NotFoundError, match="deployment 'web' not found"):
        store.groups.update("web", replicas=1)
    with pytest.raises(NotFoundError, match="deployment 'web' not found"):
        store.groups.delete("web")


def test_changing_one_deployment_leaves_the_others(store: Store) -> None:
    store.groups.create("web", {"plugin": "caddy"}, replicas=2)
    store.groups.create("api", {"plugin": "caddy"}, replicas=2)

    store.groups.update("web", replicas=5)
    assert [(g.name, g.replicas) for g in store.groups.list()] == [("api", 2), ("web", 5)]  # by name
    assert (store.groups.get("api").name, store.groups.get("api").replicas) == ("api", 2)
    store.groups.delete("web")

    assert [(g.name, g.replicas) for g in store.groups.list()] == [("api", 2)]


def test_deleting_a_group_keeps_its_vms(store: Store) -> None:
    group = store.groups.create("web", {}, replicas=1)
    new_vm(store, "alone")
    new_vm(store, "web-1", group_id=group.id)

    assert [vm.name for vm in store.vms.list(group_id=group.id)] == ["web-1"]  # its members only
    store.groups.delete("web")

    assert store.vms.get_by_name("web-1").group_id is None


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------


def test_event_ids_are_monotonic_and_survive_prune(store: Store) -> None:
    assert store.events.latest_id() == 0
    ids = [store.events.append("vm.status", {"n": n}, vm_name="a") for n in range(10)]
    assert ids == sorted(ids) and len(set(ids)) == 10

    assert store.events.prune(keep=3) == 7

    assert [e.payload["n"] for e in store.events.since(0)] == [7, 8, 9]
    assert [e.id for e in store.events.since(ids[7])] == ids[8:]
    assert store.events.since(ids[1], limit=1)[0].id == ids[7]
    assert store.events.prune(keep=3) == 0

    store.events.prune(keep=0)
    assert store.events.since(0) == []
    assert store.events.latest_id() == ids[-1]
    assert store.events.append("vm.status", {}) == ids[-1] + 1


def test_prune_refuses_negative_keep(store: Store) -> None:
    with pytest.raises(ValueError, match="keep"):
        store.events.prune(keep=-1)


def _vm_created_in_a_transaction(store: Store) -> None:
    """Create VM ``locked`` and its configuration in one transaction."""
    with store.transaction():
        store.configs.put(new_vm(store, "locked").id, {})


@pytest.mark.parametrize(
    "write",
    [
        # one statement written on its own (autocommit): the lock is met by the statement
        pytest.param(lambda store: store.events.append("vm.created", {}, vm_name="locked"), id="event"),
        # a transaction: the lock is met at its BEGIN IMMEDIATE
        pytest.param(_vm_created_in_a_transaction, id="transaction"),
    ],
)
def test_a_write_while_another_process_holds_the_lock_is_a_503_naming_the_database(
    store: Store, db_path: Path, write: Callable[[Store], object]
) -> None:
    """When another process holds the write lock past the busy timeout, a write, on its own or in
    a transaction, is a :class:`StoreUnavailableError` (the API's 503) naming the database, and
    nothing is written; once the lock is gone the same write works.

    The busy timeout of this test's connection is shortened so that it does not wait the 5 s the
    daemon waits; the message still names the daemon's wait.
    """
    store.db.execute_sql("PRAGMA busy_timeout = 20")
    with database_locked(db_path), pytest.raises(StoreUnavailableError) as refused:
        write(store)
    assert str(refused.value) == (
        f"the state database {db_path} stayed locked by another process for {WRITE_WAIT_S:g} s "
        "(database is locked); nothing was changed: retry, and stop whatever holds the lock "
        "(a sqlite3 shell, a backup) if this repeats"
    )
    assert (store.events.since(0), store.vms.list()) == ([], [])
    write(store)


def test_timestamps_are_stored_in_utc_whatever_the_hosts_time_zone(
    store: Store, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored timestamps are compared as text (ordering, pruning): on a host whose time zone is
    not UTC (a POSIX zone five hours behind, no tz database needed) they are still written in UTC.
    """
    monkeypatch.setenv("TZ", "XST+05")
    time.tzset()
    try:
        new_vm(store, "a")
    finally:
        monkeypatch.undo()
        time.tzset()
    ((created, updated),) = raw(db_path, 'SELECT "created_at", "updated_at" FROM "vms"')
    assert (created[-6:], updated[-6:]) == ("+00:00", "+00:00")


# --------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------


def test_concurrent_writers_never_see_database_locked(store: Store) -> None:
    threads, writes = 8, 50
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            barrier.wait()
            for n in range(writes):
                name = f"w{worker}-{n}"
                with store.transaction():
                    cid = store.vms.next_vsock_cid()
                    vm = store.vms.create(
                        name=name,
                        status="pending",
                        runtime="r",
                        plugin="p",
                        hypervisor="qemu",
                        mac_address=f"02:00:00:00:{worker:02x}:{n:02x}",
                        vsock_cid=cid,
                        cpu_cores=1,
                        memory_mb=64,
                        runtime_dir=Path("/run") / name,
                    )
                    store.configs.put(vm.id, {"n": n})
                store.events.append("vm.created", {"n": n}, vm_name=name)
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()

    assert errors == []
    vms = store.vms.list()
    assert len(vms) == threads * writes
    assert sorted(vm.vsock_cid for vm in vms) == list(range(3, 3 + threads * writes))
    assert store.events.latest_id() == threads * writes


def test_configs_of_many_vms_in_one_query(store: Store) -> None:
    a, b, c = (new_vm(store, name) for name in ("a", "b", "c"))
    for vm, versions in ((a, 1), (b, 3)):
        for n in range(versions):
            store.configs.put(vm.id, {"n": n})
    current = store.configs.current_many([a.id, b.id, c.id])
    assert {vm_id: r.version for vm_id, r in current.items()} == {a.id: 1, b.id: 3}
    older = store.configs.versions({a.id: 1, b.id: 2, c.id: 1})
    assert {vm_id: r.config["n"] for vm_id, r in older.items()} == {a.id: 0, b.id: 1}
    assert store.configs.versions({}) == {}


def test_idempotency_keys(store: Store) -> None:
    keys = store.idempotency
    slot = KeySlot("", "POST /x", "k")
    assert keys.claim(slot, "d1") is None
    held = keys.claim(slot, "d2")
    assert held is not None and held.status is None and held.digest == "d1"
    # the same key of another owner or scope is another slot, and replays its own request
    assert keys.claim(KeySlot("owner-b", "POST /x", "k"), "d1-b") is None
    assert keys.claim(KeySlot("", "POST /y", "k"), "d1") is None
    held_b = keys.claim(KeySlot("owner-b", "POST /x", "k"), "d2")
    assert held_b is not None and held_b.digest == "d1-b"
    keys.finish(slot, 201, {"ok": True})
    done = keys.claim(slot, "d1")
    assert done is not None and (done.status, done.response) == (201, {"ok": True})
    keys.release(slot)
    assert keys.claim(slot, "d3") is None
    # a daemon's start frees the keys whose requests never finished, and only those
    keys.finish(KeySlot("owner-b", "POST /x", "k"), 200, None)
    assert keys.release_unfinished() == 2
    assert keys.claim(slot, "d4") is None
    # only keys claimed strictly before the instant given are pruned: owner-b's, not the one
    # claimed at that very instant
    held = keys.claim(slot, "d5")
    assert held is not None and held.digest == "d4"
    assert keys.prune(held.created_at) == 1
    assert keys.claim(slot, "d5") == held
    assert keys.prune(utcnow() + timedelta(seconds=1)) == 1


def test_vm_changes_count_every_write_of_a_vm_or_its_configuration_by_any_connection(
    store: Store, db_path: Path
) -> None:
    counts = [store.vms.changes()]

    def moved_on() -> bool:
        counts.append(store.vms.changes())
        return counts[-1] > counts[-2]

    vm = new_vm(store, "counted")
    assert moved_on()
    store.configs.put(vm.id, {"plugin": "pyhttp"})
    assert moved_on()
    store.vms.update("counted", status="running")
    assert moved_on()
    store.vms.get_by_name("counted"), store.vms.list(), store.configs.current(vm.id)
    assert not moved_on()
    other = open_store(db_path)  # another connection, as another process would write
    try:
        other.configs.put(vm.id, {"plugin": "pyhttp", "cpu_cores": 2})
        assert moved_on()
        other.vms.delete("counted")
        assert moved_on()
    finally:
        other.close()
    with pytest.raises(RuntimeError), store.transaction():
        new_vm(store, "rolled-back")
        raise RuntimeError("undo")
    assert not moved_on()


def test_a_rollback_outside_a_transaction_frees_no_other_writer(tmp_path: Path) -> None:
    """The daemon's writers queue on one lock. A ``rollback()`` on a thread that holds no
    transaction (none begun, or one already committed) is a no-op: it neither fails nor frees the
    lock another thread's transaction holds, so the writers after it still take turns and each
    one's commit completes.
    """
    db = connect(tmp_path / "state.db")
    db.execute_sql("CREATE TABLE t (x INTEGER)")
    with db.atomic():
        db.execute_sql("INSERT INTO t VALUES (0)")
    db.rollback()  # this thread's transaction is over: nothing to free

    holding, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def write(value: int, hold: bool) -> None:
        try:
            with db.atomic():
                db.execute_sql("INSERT INTO t VALUES (?)", (value,))
                if hold:
                    holding.set()
                    release.wait(10)
        except BaseException as error:  # reported by the test below
            failures.append(error)

    first = threading.Thread(target=write, args=(1, True))
    first.start()
    assert holding.wait(10)

    def roll_back() -> None:
        try:
            db.rollback()
        except BaseException as error:  # reported by the test below
            failures.append(error)

    stray = threading.Thread(target=roll_back)  # a thread that never began a transaction
    stray.start()
    stray.join(10)
    second = threading.Thread(target=write, args=(2, False))
    second.start()
    release.set()
    first.join(10)
    second.join(10)
    assert failures == []
    assert [row[0] for row in db.execute_sql("SELECT x FROM t ORDER BY x").fetchall()] == [0, 1, 2]
    db.close()


def test_a_store_under_directories_that_do_not_exist_yet_creates_them(tmp_path: Path) -> None:
    """``VOLANT_DB_PATH`` may name a file several directories below any that exist."""
    path = tmp_path / "new" / "deeper" / "state.db"
    store = open_store(path)
    try:
        new_vm(store, "a")
    finally:
        store.close()
    reopened = open_store(path)
    try:
        assert [vm.name for vm in reopened.vms.list()] == ["a"]
    finally:
        reopened.close()


def _migrations_package(root: Path, name: str, modules: list[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """A package ``name`` under ``root`` holding ``modules``, each with an ``up(db)`` doing nothing."""
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module in modules:
        (package / f"{module}.py").write_text("def up(db):\n    pass\n")
    monkeypatch.syspath_prepend(str(root))
    return importlib.import_module(name)


def test_migrations_are_found_beside_other_modules_and_two_of_one_version_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Modules that are not migrations (a helper sorting first) are skipped, not the end of the
    search; two migrations claiming one version stop the daemon naming both.
    """
    found = _migrations_package(
        tmp_path, "test_found_migrations", ["a_helper", "m0002_b", "m0001_a"], monkeypatch
    )
    assert [(m.version, m.name) for m in discover(found)] == [(1, "a"), (2, "b")]
    clashing = _migrations_package(tmp_path, "test_clashing_migrations", ["m0001_a", "m0001_b"], monkeypatch)
    with pytest.raises(RuntimeError) as refused:
        discover(clashing)
    assert str(refused.value) == "two migrations share version 1: m0001_a, m0001_b"
