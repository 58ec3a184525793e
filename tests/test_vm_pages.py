"""``GET /api/v1/vms`` keeps its encoded answers while no VM changes: every change shows at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core.manifest import parse_manifest
from volant_core.orchestrator.vmconfig import VMConfig
from volant_core.store import open_store
from volant_core.testing.daemon import RunningDaemon, running_daemon

MANIFEST = {
    "name": "outside",
    "version": "1.0.0",
    "runtime": "outside",
    "workload": {"type": "http", "base_url": "http://127.0.0.1:8000", "entrypoint": ["/bin/true"]},
}
#: The configuration of the VM written behind the daemon's back.
CONFIG = VMConfig.from_manifest("outside", parse_manifest(MANIFEST)).to_json()


@pytest.fixture
def api() -> Iterator[RunningDaemon]:
    """A daemon with no VMs."""
    with running_daemon() as daemon:
        yield daemon


def listed(api: RunningDaemon, query: str = "") -> tuple[list[dict[str, Any]], int]:
    """The VMs ``GET /api/v1/vms?<query>`` answers and its ``X-Total-Count``."""
    reply = api.request("GET", f"/api/v1/vms?{query}")
    assert reply.status == 200, reply.body
    total = {k.lower(): v for k, v in reply.headers.items()}["x-total-count"]
    return reply.json(), int(total)


def test_the_list_shows_every_write_made_behind_the_daemons_back(api: RunningDaemon, tmp_path: Path) -> None:
    assert listed(api) == ([], 0)
    outside = open_store(api.daemon.settings.db_path)  # another connection, as another process writes
    try:
        vm = outside.vms.create(
            name="outsider",
            status="stopped",
            runtime="outside",
            plugin="outside",
            hypervisor="qemu",
            mac_address="02:00:00:00:00:09",
            vsock_cid=99,
            cpu_cores=1,
            memory_mb=128,
            runtime_dir=tmp_path / "outsider",
        )
        outside.configs.put(vm.id, CONFIG)
        vms, total = listed(api)
        assert ([v["name"] for v in vms], total) == (["outsider"], 1)
        assert vms[0]["config_version"] == 1
        assert listed(api, "status=running") == ([], 0)

        outside.configs.put(vm.id, CONFIG)
        assert listed(api)[0][0]["config_version"] == 2
        outside.vms.update("outsider", status="crashed", status_reason="gone")
        vms, _ = listed(api)
        assert (vms[0]["status"], vms[0]["status_reason"]) == ("crashed", "gone")
        assert [v["name"] for v in listed(api, "status=crashed")[0]] == ["outsider"]

        outside.vms.delete("outsider")
        assert listed(api) == ([], 0)
        assert listed(api, "status=crashed") == ([], 0)
    finally:
        outside.close()
