"""The online backup that docs/operations.md tells operators to run gives a complete, consistent copy of
the database while volantd runs and writes to it.

The command is taken from the page (the Python one, which needs no extra package) and run as
written, with the page's paths replaced by the test daemon's database and a temporary file, while
another thread keeps changing a VM's configuration: the backup must hold the VM and the changes
stored before it started, pass SQLite's integrity check and be one volantd opens without migrating.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.waiting import eventually

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ROOT / "docs" / "operations.md"
#: The page's database and backup paths, as the page writes them.
PAGE_DB = "/var/lib/volant/state.db"
PAGE_BACKUP = '"/var/backups/volant/state-$(date +%F).db"'


def documented_backup_command() -> str:
    """The page's ``python3 -c ...`` backup command, its continuation lines joined."""
    text = OPERATIONS.read_text().replace("\\\n", " ")
    match = re.search(r"^python3 -c .*$", text, re.MULTILINE)
    assert match, "docs/operations.md shows no `python3 -c` backup command"
    return match.group()


def _keep_writing(api: RunningDaemon, name: str, stop: threading.Event, writes: list[int]) -> None:
    """Change VM ``name``'s metadata until ``stop`` is set, counting the changes volantd stored."""
    while not stop.is_set():
        answer = api.request("PATCH", f"/api/v1/vms/{name}/config", {"metadata": {"n": len(writes)}})
        assert answer.status == 200, answer
        writes.append(answer.status)


def _rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(query).fetchall()


def test_the_documented_backup_is_complete_while_volantd_writes(
    host_api: RunningDaemon, tmp_path: Path
) -> None:
    """The backup holds the VM and its latest configurations, is intact, and needs no migration."""
    assert host_api.request("POST", "/api/v1/vms", {"name": "web-1", "plugin": "hello-host"}).status == 201
    host_api.wait_for_status("web-1", {"running"})
    database = host_api.state_dir / "state.db"
    backup = tmp_path / "state-backup.db"
    command = documented_backup_command()
    assert PAGE_DB in command and PAGE_BACKUP in command, command
    command = command.replace(PAGE_DB, str(database)).replace(PAGE_BACKUP, str(backup))

    stop, writes = threading.Event(), list[int]()
    writer = threading.Thread(target=_keep_writing, args=(host_api, "web-1", stop, writes))
    writer.start()
    try:
        eventually(lambda: len(writes) >= 3 or not writer.is_alive(), "three configuration changes")
        assert writer.is_alive(), "the writer stopped"  # the backup runs while changes are written
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=False)
    finally:
        stop.set()
        writer.join()
    assert done.returncode == 0, done.stderr

    assert _rows(backup, "PRAGMA integrity_check") == [("ok",)]
    assert _rows(backup, "SELECT name FROM vms") == [("web-1",)]
    # version 1, and at least the three changes stored before the backup started
    assert _rows(backup, "SELECT version FROM vm_configs")[0][0] >= 4
    migrate = subprocess.run(
        [str(Path(sys.executable).parent / "volantd"), "migrate", "--db", str(backup)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert migrate.returncode == 0 and "up to date" in migrate.stdout, migrate.stdout + migrate.stderr
