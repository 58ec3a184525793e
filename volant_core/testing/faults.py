"""Fault injection and the consistency check after it: volantd killed at a chosen event, then what
must hold once it started again (every VM settled and telling the truth, nothing leaked).

:func:`sigkill_on_event` kills a volantd child process the moment its event stream publishes an
event; :func:`settled_vms` waits until no VM is in a transient state; :func:`inconsistencies`
lists what disagrees between the VM rows, the processes, the VM directories and the IP leases.
"""

from __future__ import annotations

import contextlib
import http.client
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from volant_core.cli.client import ApiClient, ApiError
from volant_core.cli.events import Resume, frames
from volant_core.testing.processes import pid_alive, processes_mentioning
from volant_core.testing.waiting import eventually

#: The statuses a VM may rest in; ``pending``, ``starting`` and ``stopping`` are on the way.
SETTLED = frozenset({"running", "crashed", "stopped"})


@contextlib.contextmanager
def sigkill_on_event(
    process: subprocess.Popen[bytes], client: ApiClient, event_type: str, *, count: int = 1
) -> Iterator[threading.Event]:
    """Follow ``client``'s event stream and SIGKILL ``process`` (its volantd) when the ``count``-th
    event of ``event_type`` arrives. The stream is subscribed before the body runs; the event
    yielded is set once the signal was sent. On exit, waits (with a deadline) for the kill.
    """
    killed = threading.Event()
    connected = threading.Event()
    path = "/api/v1/events/vms?" + urllib.parse.urlencode({"type": event_type})

    def watch() -> None:
        try:
            with client.stream(path, timeout=None) as body:
                connected.set()
                seen = 0
                for frame in frames(body, Resume(None)):
                    seen += frame.event == event_type
                    if seen >= count:
                        process.send_signal(signal.SIGKILL)
                        killed.set()
                        return
        except (OSError, http.client.HTTPException, ApiError):
            return  # volantd went away another way: the caller's wait says so

    watcher = threading.Thread(target=watch, name="sigkill-on-event", daemon=True)
    watcher.start()
    eventually(connected.is_set, f"the event stream to open (waiting for {event_type})")
    yield killed
    eventually(killed.is_set, f"event {event_type} #{count} to arrive and volantd to be killed", timeout=120)
    process.wait(30)


def settled_vms(client: ApiClient, timeout: float = 60) -> list[dict[str, Any]]:
    """Poll ``GET /api/v1/vms`` until every VM is in a :data:`SETTLED` status; return them."""
    deadline = time.monotonic() + timeout
    while True:
        vms: list[dict[str, Any]] = client.json("GET", "/api/v1/vms")
        if all(vm["status"] in SETTLED for vm in vms):
            return vms
        if time.monotonic() > deadline:
            moving = {vm["name"]: vm["status"] for vm in vms if vm["status"] not in SETTLED}
            raise AssertionError(f"after {timeout}s these VMs are still not settled: {moving}")
        time.sleep(0.2)


def leases(db_path: Path) -> dict[str, str | None]:
    """The IP leases in the state database (read-only): address -> name of the VM holding it (None
    when no VM row has that id).
    """
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)) as db:
        rows = db.execute(
            "SELECT a.ip_address, v.name FROM ip_allocations a LEFT JOIN vms v ON v.id = a.vm_id"
        ).fetchall()
    return {ip: name for ip, name in rows}


def vmm_processes(run_dir: Path) -> dict[str, list[int]]:
    """The live processes whose command line points into a VM directory under ``run_dir``, by the
    name of that directory (a QEMU names its sockets there, a host-process kestrel its agent socket).
    """
    found: dict[str, list[int]] = {}
    prefix = str(run_dir) + "/"
    for pid in processes_mentioning(prefix):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        for word in argv.split("\0"):
            if prefix in word:
                name = word.split(prefix, 1)[1].split("/", 1)[0]
                found.setdefault(name, []).append(pid)
                break
    return found


def inconsistencies(vms: list[dict[str, Any]], state_dir: Path) -> list[str]:
    """What disagrees between the VM resources ``vms`` (``GET /api/v1/vms``), the processes, the VM
    directories of ``state_dir/run`` and the IP leases of ``state_dir/state.db``; empty when all
    agree:

    * a ``running`` VM's recorded VMM is alive and its directory exists; a ``crashed`` VM says why
      and has no VMM left; a ``stopped`` one has none either;
    * no process points into the directory of a VM without a row;
    * no VM directory without a row;
    * every VM with an address holds its lease, and every lease belongs to a VM row with that address.
    """
    run_dir = state_dir / "run"
    problems: list[str] = []
    by_name = {vm["name"]: vm for vm in vms}
    processes = vmm_processes(run_dir)
    for name, vm in by_name.items():
        status, pid = vm["status"], vm.get("pid")
        if status not in SETTLED:
            problems.append(f"{name} is {status}, not settled")
        if status == "running":
            if pid is None or not pid_alive(pid):
                problems.append(f"{name} is running but its VMM (pid {pid}) is not")
            if not Path(vm["runtime_dir"]).is_dir():
                problems.append(f"{name} is running but its directory {vm['runtime_dir']} is gone")
        else:
            if processes.get(name):
                problems.append(f"{name} is {status} but processes {processes[name]} still run for it")
            if status == "crashed" and not vm.get("status_reason"):
                problems.append(f"{name} is crashed without a reason")
    for name, pids in processes.items():
        if name not in by_name:
            problems.append(f"processes {pids} run for {name}, which has no row")
    if run_dir.is_dir():
        for entry in run_dir.iterdir():
            if entry.name not in by_name:
                problems.append(f"directory {entry} is left of {entry.name}, which has no row")
    leased = leases(state_dir / "state.db")
    for ip, owner in leased.items():
        if owner is None or by_name.get(owner, {}).get("ip_address") != ip:
            problems.append(f"lease {ip} is held by {owner or 'no VM row'}")
    for name, vm in by_name.items():
        if vm.get("ip_address") and leased.get(vm["ip_address"]) != name:
            problems.append(f"{name} has address {vm['ip_address']} without its lease")
    return problems
