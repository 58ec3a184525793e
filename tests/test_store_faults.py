"""Store faults over HTTP: a state database locked by another process past the busy timeout, and a
full disk under the state directory, are 503s that say so, and leave nothing half-written.

Both run a real volantd on the test-host-process backend: the lock is a ``BEGIN IMMEDIATE`` held by
a ``sqlite3`` connection in another process, the full disk a small tmpfs mounted as the state
directory and filled up (the tests run as root, as volantd's own tests do).
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon
import falcon.testing
import pytest

from volant_core.api import errors
from volant_core.store.database import WRITE_WAIT_S
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import host_process_daemon
from volant_core.testing.store_faults import database_locked, fill_disk, small_tmpfs


def _assert_nothing_of(api: RunningDaemon, name: str) -> None:
    """No row, no event, no runtime directory of VM ``name``."""
    assert api.request("GET", "/api/v1/vms").json() == []
    assert api.request("GET", f"/api/v1/vms/{name}").status == 404
    assert not (api.daemon.settings.runtime_dir / name).exists()
    assert [e for e in api.daemon.store.events.since(0) if e.vm_name == name] == []


def test_a_database_locked_past_the_busy_timeout_is_a_503_and_nothing_is_written(
    host_api: RunningDaemon,
) -> None:
    with database_locked(host_api.daemon.settings.db_path):
        answer = host_api.request("POST", "/api/v1/vms", {"name": "locked", "plugin": "hello-host"})
    assert answer.status == 503, answer.body
    error = answer.json()["error"]
    assert error["code"] == "store_unavailable"
    assert error["message"] == (
        f"the state database {host_api.daemon.settings.db_path} stayed locked by another process for 5 s "
        "(database is locked); nothing was changed: retry, and stop whatever holds the lock "
        "(a sqlite3 shell, a backup) if this repeats"
    )
    assert answer.headers["retry-after"] == "5"
    _assert_nothing_of(host_api, "locked")
    # the lock is gone: the same request now works
    created = host_api.request("POST", "/api/v1/vms", {"name": "locked", "plugin": "hello-host"})
    assert created.status == 201, created.body


def test_a_transaction_of_the_daemon_held_past_the_wait_is_a_503_and_nothing_is_written(
    host_api: RunningDaemon,
) -> None:
    """A write that waits :data:`~volant_core.store.database.WRITE_WAIT_S` for another transaction
    of the same daemon (here one the test holds open in a thread) gives up with a 503 saying so.
    """
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with host_api.daemon.store.db.atomic():
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        answer = host_api.request("POST", "/api/v1/vms", {"name": "queued", "plugin": "hello-host"})
    finally:
        release.set()
        holder.join(10)
    assert answer.status == 503, answer.body
    assert answer.json()["error"]["message"] == (
        f"the state database {host_api.daemon.settings.db_path} stayed locked by another transaction "
        f"of this daemon for {WRITE_WAIT_S:g} s; nothing was changed: retry"
    )
    _assert_nothing_of(host_api, "queued")


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 16 MiB tmpfs, mounted for the test and unmounted after."""
    with small_tmpfs("16m") as mount:
        yield mount


def test_a_full_disk_under_the_state_directory_is_a_503_and_nothing_is_written(
    small_disk: Path, host_manifest: dict[str, Any]
) -> None:
    with host_process_daemon(state_dir=small_disk, stop_timeout=5) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        filler = fill_disk(small_disk)
        answer = api.request("POST", "/api/v1/vms", {"name": "full", "plugin": "hello-host"})
        assert answer.status == 503, answer.body
        error = answer.json()["error"]
        assert error["code"] == "disk_full"
        assert error["message"] == (
            f"the disk holding the state database {api.daemon.settings.db_path} is full "
            "(database or disk is full); nothing was changed: free space there, then retry"
        )
        assert answer.headers["retry-after"] == "30"
        _assert_nothing_of(api, "full")
        filler.unlink()
        created = api.request("POST", "/api/v1/vms", {"name": "full", "plugin": "hello-host"})
        assert created.status == 201, created.body


def test_a_full_disk_under_the_vm_directories_is_a_503_naming_the_file_and_nothing_is_kept(
    small_disk: Path, host_manifest: dict[str, Any]
) -> None:
    with host_process_daemon(runtime_dir=small_disk / "run", stop_timeout=5) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        filler = fill_disk(small_disk)
        answer = api.request("POST", "/api/v1/vms", {"name": "full", "plugin": "hello-host"})
        assert answer.status == 503, answer.body
        error = answer.json()["error"]
        assert error["code"] == "disk_full"
        assert str(small_disk / "run" / "full") in error["message"]
        assert api.request("GET", "/api/v1/vms").json() == []
        assert not (small_disk / "run" / "full").exists()
        filler.unlink()
        created = api.request("POST", "/api/v1/vms", {"name": "full", "plugin": "hello-host"})
        assert created.status == 201, created.body


class _WritesToAFullDisk:
    """A route failing as a write to a full disk fails."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Fail with ENOSPC writing ``/state/file``."""
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/state/file")


def test_any_write_to_a_full_disk_is_a_503_naming_the_file() -> None:
    # the API's error handlers on a bare Falcon app: the route stands for any of volantd's writes
    app = falcon.App()
    errors.install(app)
    app.add_route("/write", _WritesToAFullDisk())
    answer = falcon.testing.TestClient(app).simulate_post("/write")
    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "disk_full"
    assert "/state/file" in answer.json["error"]["message"]
    assert answer.headers["retry-after"] == "30"
