"""Resource limits over real sockets, on the test-host-process backend (docs/adr/0027).

The host's capacity is read as volantd reads it (:func:`volant_core.hostcapacity.host_capacity`);
the overcommit ratios and limits are set per daemon so each boundary sits where the test wants
it on any machine. The backend's VMs take no vCPUs or memory, so VMs as big as the host are cheap.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from volant_core.cli.client import Reply
from volant_core.errors import ValidationError
from volant_core.hostcapacity import host_capacity
from volant_core.orchestrator.vmconfig import Resources
from volant_core.settings import load_settings
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import host_process_daemon

HOST = host_capacity()
#: The schema's caps on one VM (vmconfig.CpuCores, MemoryMB): a host beyond them has no 422 to find.
SCHEMA_MAX = {
    name: next(m.le for m in field.metadata if hasattr(m, "le"))
    for name, field in Resources.model_fields.items()
}


def test_the_hosts_memory_is_its_memtotal() -> None:
    """The memory admission counts and its refusals name is ``/proc/meminfo``'s ``MemTotal``
    (volantd reads it through ``sysinfo(2)``, not by parsing that file on every check).
    """
    lines = Path("/proc/meminfo").read_text().splitlines()
    mem_total_kib = next(int(line.split()[1]) for line in lines if line.startswith("MemTotal:"))
    assert host_capacity().memory_mb == mem_total_kib // 1024


@contextmanager
def limited(manifest: dict[str, Any], **settings: Any) -> Iterator[RunningDaemon]:
    """A host-process daemon with ``settings`` and the manifest installed."""
    with host_process_daemon(**settings) as api:
        assert api.request("POST", "/api/v1/plugins", manifest).status == 201
        yield api


def create(api: RunningDaemon, name: str, **config: Any) -> Reply:
    """``POST /api/v1/vms`` of a ``hello-host`` VM with ``config``."""
    return api.request("POST", "/api/v1/vms", {"name": name, "plugin": "hello-host", "config": config})


def sized(cpu_cores: int = 1, memory_mb: int = 128) -> dict[str, Any]:
    """A config with these resources."""
    return {"resources": {"cpu_cores": cpu_cores, "memory_mb": memory_mb}}


def refused(reply: Reply, status: int, *words: str) -> str:
    """Assert ``reply`` is a ``status`` whose message names every one of ``words``; the message."""
    assert reply.status == status, reply.body
    message: str = reply.json()["error"]["message"]
    for word in words:
        assert word in message, message
    return message


def vm_names(api: RunningDaemon) -> list[str]:
    return [vm["name"] for vm in api.request("GET", "/api/v1/vms").json()]


@pytest.mark.parametrize(
    ("field", "bigger", "setting"),
    [
        ("cpu_cores", HOST.cpus + 1, "VOLANT_CPU_OVERCOMMIT"),
        ("memory_mb", HOST.memory_mb + 1, "VOLANT_MEMORY_OVERCOMMIT"),
    ],
)
def test_a_vm_bigger_than_the_host_is_refused_everywhere_with_422(
    host_manifest: dict[str, Any], field: str, bigger: int, setting: str
) -> None:
    if bigger > SCHEMA_MAX[field]:
        pytest.skip(f"this host is bigger than any VM the schema allows ({field} <= {SCHEMA_MAX[field]})")
    too_big = {"resources": {field: bigger}}
    # The ratios allow thousands of host-sized VMs: one VM is still never bigger than the host.
    with limited(host_manifest) as api:
        message = refused(create(api, "huge", **too_big), 422, f"resources.{field}", str(bigger - 1), setting)
        assert "at most" in message
        assert vm_names(api) == [] and api.daemon.store.ips.leased() == []

        assert create(api, "small", **sized()).status == 201
        before = api.request("GET", "/api/v1/vms/small/config").json()["version"]
        patched = api.request("PATCH", "/api/v1/vms/small/config", too_big)
        refused(patched, 422, f"resources.{field}")
        assert api.request("GET", "/api/v1/vms/small/config").json()["version"] == before

        deployment = {"name": "big", "replicas": 1, "config": {"plugin": "hello-host", **too_big}}
        refused(api.request("POST", "/api/v1/deployments", deployment), 422, f"resources.{field}")
        assert api.request("GET", "/api/v1/deployments/big").status == 404


@pytest.mark.parametrize(
    ("field", "whole", "setting"),
    [
        ("cpu_cores", HOST.cpus, "VOLANT_CPU_OVERCOMMIT"),
        ("memory_mb", HOST.memory_mb, "VOLANT_MEMORY_OVERCOMMIT"),
    ],
)
def test_vms_holding_resources_share_the_host_times_the_overcommit_ratio(
    host_manifest: dict[str, Any], field: str, whole: int, setting: str
) -> None:
    if whole > SCHEMA_MAX[field]:
        pytest.skip(f"this host is bigger than any VM the schema allows ({field} <= {SCHEMA_MAX[field]})")
    if whole < 2:
        pytest.skip("a host-sized VM and two of the smallest size fit a ratio of 2 only from 2 CPUs on")
    ratio = "cpu_overcommit" if field == "cpu_cores" else "memory_overcommit"
    host_sized = {"resources": {field: whole}}
    # Two host-sized VMs fit a ratio of 2, a third one of the smallest size does not.
    with limited(host_manifest, **{ratio: 2.0}) as api:
        assert create(api, "a", **host_sized).status == 201
        assert create(api, "b", **host_sized).status == 201
        message = refused(
            create(api, "c", **sized()),
            409,
            setting,
            f"{2 * whole} {'vCPUs' if field == 'cpu_cores' else 'MiB'}",
        )
        assert f"use {2 * whole} of" in message
        assert vm_names(api) == ["a", "b"]
        assert api.request("GET", "/api/v1/vms/c").json()["error"]["code"] == "not_found"

        # A stopped VM holds nothing: c fits once b stops, and b cannot start again as it was.
        assert api.request("POST", "/api/v1/vms/b/stop").status == 200
        assert create(api, "c", **sized()).status == 201
        refused(api.request("POST", "/api/v1/vms/b/start"), 409, setting)
        assert api.request("GET", "/api/v1/vms/b").json()["status"] == "stopped"

        # Made small, b starts; a running VM then cannot grow past the room left.
        assert api.request("PATCH", "/api/v1/vms/b/config", sized()).status == 200
        assert api.request("POST", "/api/v1/vms/b/start").status == 200
        before = api.request("GET", "/api/v1/vms/b/config").json()
        refused(api.request("PATCH", "/api/v1/vms/b/config", host_sized), 409, setting)
        assert api.request("GET", "/api/v1/vms/b/config").json() == before


def test_concurrent_creates_never_take_more_than_the_capacity(host_manifest: dict[str, Any]) -> None:
    names = [f"vm-{i}" for i in range(HOST.cpus + 4)]
    with limited(host_manifest, cpu_overcommit=1.0) as api:
        with ThreadPoolExecutor(len(names)) as pool:
            statuses = list(pool.map(lambda name: create(api, name, **sized()).status, names))
        assert sorted(statuses) == sorted([201] * HOST.cpus + [409] * 4)
        assert len(vm_names(api)) == HOST.cpus


def test_the_vm_count_limit_refuses_a_vm_with_409_leaving_no_row_and_no_lease(
    host_manifest: dict[str, Any], leased_ip_mode: Any
) -> None:
    settings = {"max_vms": 2, "network_mode": leased_ip_mode.mode}
    with host_process_daemon(plugins=[leased_ip_mode.registration], **settings) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        assert create(api, "one").status == 201
        assert create(api, "two").status == 201
        refused(create(api, "three"), 409, "VOLANT_MAX_VMS", "2")
        assert vm_names(api) == ["one", "two"]
        assert len(api.daemon.store.ips.leased()) == 2
        assert api.request("DELETE", "/api/v1/vms/one").status == 204
        assert create(api, "three").status == 201


def test_the_replica_cap_refuses_create_and_scale_with_422(host_manifest: dict[str, Any]) -> None:
    with limited(host_manifest, max_replicas=3) as api:
        body = {"name": "web", "replicas": 4, "config": {"plugin": "hello-host"}}
        refused(api.request("POST", "/api/v1/deployments", body), 422, "VOLANT_MAX_REPLICAS", "3")
        assert api.request("GET", "/api/v1/deployments/web").status == 404

        assert api.request("POST", "/api/v1/deployments", {**body, "replicas": 0}).status == 201
        refused(api.request("PATCH", "/api/v1/deployments/web", {"replicas": 4}), 422, "VOLANT_MAX_REPLICAS")
        assert api.request("GET", "/api/v1/deployments/web").json()["replicas"] == 0


def test_a_replica_cap_beyond_member_names_is_refused_at_startup() -> None:
    with pytest.raises(ValidationError, match="VOLANT_MAX_REPLICAS"):
        load_settings({"VOLANT_MAX_REPLICAS": "10000", "VOLANT_STATE_DIR": "/nonexistent"})


def metadata_of_size(size: int) -> dict[str, str]:
    """Metadata whose compact JSON is exactly ``size`` bytes (``{"k":"..."}``)."""
    document = {"k": "x" * (size - len('{"k":""}'))}
    assert len(json.dumps(document, separators=(",", ":"))) == size
    return document


def test_metadata_over_the_limit_is_refused_with_422(host_manifest: dict[str, Any]) -> None:
    with limited(host_manifest, max_metadata_bytes=1024) as api:
        over = {"metadata": metadata_of_size(1025)}
        refused(create(api, "fat", **over), 422, "metadata", "1025", "1024", "VOLANT_MAX_METADATA_BYTES")
        assert vm_names(api) == []

        assert create(api, "lean", metadata=metadata_of_size(1024)).status == 201
        before = api.request("GET", "/api/v1/vms/lean/config").json()
        refused(api.request("PATCH", "/api/v1/vms/lean/config", over), 422, "VOLANT_MAX_METADATA_BYTES")
        assert api.request("GET", "/api/v1/vms/lean/config").json() == before

        deployment = {"name": "web", "replicas": 1, "config": {"plugin": "hello-host", **over}}
        refused(api.request("POST", "/api/v1/deployments", deployment), 422, "VOLANT_MAX_METADATA_BYTES")


def history_versions(api: RunningDaemon, name: str) -> list[int]:
    return [item["version"] for item in api.request("GET", f"/api/v1/vms/{name}/config/history").json()]


def test_config_history_keeps_the_newest_versions_and_the_booted_one(host_manifest: dict[str, Any]) -> None:
    with limited(host_manifest, config_history=3) as api:
        assert create(api, "vm", **sized()).status == 201
        api.wait_for_status("vm", {"running"})  # booted version 1
        for n in range(5):
            assert api.request("PATCH", "/api/v1/vms/vm/config", sized(memory_mb=200 + n)).status == 200
        assert history_versions(api, "vm") == [6, 5, 4, 1]
        vm = api.request("GET", "/api/v1/vms/vm").json()
        assert (vm["config_version"], vm["restart_pending"], vm["memory_mb"]) == (6, True, 128)

        refused(
            api.request("POST", "/api/v1/vms/vm/config/rollback", {"version": 2}),
            404,
            "VOLANT_CONFIG_HISTORY",
        )
        assert api.request("POST", "/api/v1/vms/vm/config/rollback", {"version": 1}).status == 200
        assert history_versions(api, "vm") == [7, 6, 5, 1]

        # Booting version 7 lets version 1 go with the next change.
        assert api.request("POST", "/api/v1/vms/vm/restart").status == 200
        assert api.request("PATCH", "/api/v1/vms/vm/config", sized(memory_mb=300)).status == 200
        assert history_versions(api, "vm") == [8, 7, 6]
