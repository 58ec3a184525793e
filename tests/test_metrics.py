"""``GET /metrics`` (issue 15): Prometheus text from a real volantd, counters that move with what
happens to VMs, and the same access control as the rest of the API (ADR 39).

The VMs are host processes (the ``test-host-process`` backend): what is counted does not depend on
QEMU.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from volant_core import artifacts
from volant_core.artifact_cache import ArtifactCache
from volant_core.errors import ValidationError
from volant_core.settings import load_settings
from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.hostvm import NAME as HOST_PROCESS
from volant_core.testing.hostvm import host_process_daemon
from volant_core.testing.waiting import eventually

KEY = "metrics-key"
SCRAPER = "10.1.2.3"

#: One scrape: (metric sample name, sorted label items) -> value.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(daemon: RunningDaemon, headers: dict[str, str] | None = None) -> Samples:
    """``GET /metrics``, parsed by prometheus_client's own parser."""
    reply = daemon.request("GET", "/metrics", headers=headers)
    assert reply.status == 200, reply.body
    content_type = {k.lower(): v for k, v in reply.headers.items()}["content-type"]
    assert content_type.startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels`` (0 when absent: a counter not yet counted)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def vms_in(samples: Samples, state: str) -> float:
    return value(samples, "volant_vms", state=state, hypervisor=HOST_PROCESS)


@pytest.fixture
def host_daemon(host_manifest: dict[str, Any]) -> Iterator[RunningDaemon]:
    with host_process_daemon() as daemon:
        assert daemon.request("POST", "/api/v1/plugins", host_manifest).status == 201
        yield daemon


def test_counters_move_with_a_boot_and_a_crash(host_daemon: RunningDaemon) -> None:
    before = scrape(host_daemon)
    assert vms_in(before, "running") == 0 and value(before, "volant_vm_boots_total") == 0

    body = {"name": "counted", "plugin": "hello-host"}
    assert host_daemon.request("POST", "/api/v1/vms", body).status == 201
    vm = host_daemon.wait_for_status("counted", {"running"}, timeout=30)
    proxied = host_daemon.request("GET", "/api/v1/vms/counted/agent/v1/health")
    booted = scrape(host_daemon)
    assert value(booted, "volant_vm_boots_total") == 1
    assert value(booted, "volant_vm_boot_seconds_count") == 1
    assert value(booted, "volant_vm_boot_seconds_sum") > 0
    assert vms_in(booted, "running") == 1
    assert value(booted, "volant_api_requests_total", route="/api/v1/vms", method="POST", status="201") == 1
    assert value(booted, "volant_agent_proxy_requests_total", status=str(proxied.status)) == 1
    assert value(booted, "volant_agent_proxy_seconds_count") == 1

    os.kill(vm["pid"], signal.SIGKILL)
    host_daemon.wait_for_status("counted", {"crashed"}, timeout=30)
    crashed = scrape(host_daemon)
    assert value(crashed, "volant_vm_crashes_total") == 1
    assert value(crashed, "volant_vm_restarts_total") == 0  # restart policy "never"
    assert (vms_in(crashed, "running"), vms_in(crashed, "crashed")) == (0, 1)


def test_automatic_restarts_are_counted(host_daemon: RunningDaemon) -> None:
    policy = {"mode": "on-failure", "max_restarts": 1, "backoff_s": 0.2}
    body = {"name": "phoenix", "plugin": "hello-host", "config": {"restart_policy": policy}}
    assert host_daemon.request("POST", "/api/v1/vms", body).status == 201
    first = host_daemon.wait_for_status("phoenix", {"running"}, timeout=30)
    os.kill(first["pid"], signal.SIGKILL)
    eventually(lambda: value(scrape(host_daemon), "volant_vm_boots_total") == 2, "phoenix booted again")
    samples = scrape(host_daemon)
    assert value(samples, "volant_vm_restarts_total") == 1
    assert value(samples, "volant_vm_crashes_total") == 1


def test_routes_are_counted_by_template_never_by_raw_path() -> None:
    with running_daemon() as daemon:
        for name in ("ghost-a", "ghost-b"):
            assert daemon.request("GET", f"/api/v1/vms/{name}").status == 404
        assert daemon.request("GET", "/no/such/path/4711").status == 404
        # A method outside the usual ones (the server's parser knows PURGE; it refuses one it does
        # not know, BREW, with 400 before the app sees it) is counted as "other", not by its name.
        assert daemon.request("PURGE", "/api/v1/vms").status in (400, 405)
        samples = scrape(daemon)
    routes = {dict(labels)["route"] for name, labels in samples if name == "volant_api_requests_total"}
    assert not any("ghost" in route or "4711" in route for route in routes)
    assert (
        value(samples, "volant_api_requests_total", route="/api/v1/vms/{name}", method="GET", status="404")
        == 2
    )
    assert value(samples, "volant_api_requests_total", route="unrouted", method="GET", status="404") == 1
    methods = {dict(labels)["method"] for name, labels in samples if name == "volant_api_requests_total"}
    assert "PURGE" not in methods and "other" in methods


def test_event_subscribers_are_counted() -> None:
    with running_daemon() as daemon:
        assert value(scrape(daemon), "volant_event_subscribers") == 0
        with daemon.client().stream("/api/v1/events/vms", timeout=10):
            eventually(lambda: value(scrape(daemon), "volant_event_subscribers") == 1, "one subscriber")
        eventually(lambda: value(scrape(daemon), "volant_event_subscribers") == 0, "no subscriber left")


def test_artifact_cache_size_and_hits(tmp_path: Path) -> None:
    artifact = tmp_path / "kernel.bin"
    artifact.write_bytes(b"k" * 4096)
    checksum = "sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest()
    with running_daemon() as daemon:
        cache = daemon.daemon.settings.download_dir
        empty = scrape(daemon)
        assert value(empty, "volant_artifact_cache_bytes") == 0
        fetched = ArtifactCache(cache)
        for _ in range(3):  # one copy into the cache, then two hits
            fetched.fetch(str(artifact), checksum, artifacts.open_file, deadline=time.monotonic() + 60)
        samples = scrape(daemon)
    assert value(samples, "volant_artifact_cache_hits_total") == 2
    assert value(samples, "volant_artifact_cache_bytes") == 4096
    assert value(samples, "volant_artifact_cache_files") == 1


def test_metrics_need_the_key_unless_the_scraper_address_is_listed() -> None:
    settings = {"api_key": KEY, "metrics_addresses": "10.0.0.0/8", "trusted_proxies": "127.0.0.1/32"}
    with running_daemon(**settings) as daemon:
        assert daemon.request("GET", "/metrics").status == 401
        assert daemon.request("GET", "/metrics", headers={"X-Forwarded-For": "192.0.2.9"}).status == 401
        scraped = scrape(daemon, {"X-Forwarded-For": SCRAPER})
        assert vms_in_any(scraped)
        # The scrape address opens /metrics, nothing else.
        assert daemon.request("GET", "/api/v1/vms", headers={"X-Forwarded-For": SCRAPER}).status == 401
        assert daemon.request("POST", "/metrics", headers={"X-Forwarded-For": SCRAPER}).status == 401
        scrape(daemon, {"X-Volant-API-Key": KEY})
        refused = value(
            scrape(daemon, {"X-Volant-API-Key": KEY}),
            "volant_api_requests_total",
            route="unrouted",
            method="GET",
            status="401",
        )
        assert refused == 3  # refusals are counted too (before routing: no template)
        # A forwarded address that is no address makes no scrape.
        assert daemon.request("GET", "/metrics", headers={"X-Forwarded-For": "scraper"}).status == 401


def test_metrics_without_a_key_setting_need_no_key_like_the_rest() -> None:
    with running_daemon() as daemon:
        assert vms_in_any(scrape(daemon))


def test_a_listed_scraper_outside_the_allowlist_may_scrape_only() -> None:
    settings = {"api_allow_cidr": "192.168.0.0/16", "metrics_addresses": f"{SCRAPER}/32"}
    with running_daemon(**settings, trusted_proxies="127.0.0.1/32") as daemon:
        assert vms_in_any(scrape(daemon, {"X-Forwarded-For": SCRAPER}))
        assert daemon.request("GET", "/api/v1/vms", headers={"X-Forwarded-For": SCRAPER}).status == 403
        assert daemon.request("GET", "/metrics", headers={"X-Forwarded-For": "10.9.9.9"}).status == 403
        assert daemon.request("GET", "/metrics", headers={"X-Forwarded-For": "scraper"}).status == 403


def test_bad_scrape_addresses_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"^VOLANT_METRICS_ADDRESSES: .*10\.0\.0\.300/8"):
        load_settings({"VOLANT_METRICS_ADDRESSES": "10.0.0.0/8,10.0.0.300/8"}, state_dir=tmp_path)


def vms_in_any(samples: Samples) -> bool:
    """Whether the scrape has the VMs-by-state gauge (an answer from volantd, not an error page)."""
    return any(name == "volant_vms" for name, _ in samples)
