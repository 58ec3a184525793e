"""Installed runtime manifests through the API: what a reinstall or an enable/disable changes."""

from __future__ import annotations

from typing import Any

from volant_core.testing.daemon import RunningDaemon


def _manifest(version: str, port: int) -> dict[str, Any]:
    return {
        "name": "svc",
        "version": version,
        "runtime": "svc",
        "workload": {"type": "http", "base_url": f"http://127.0.0.1:{port}", "entrypoint": ["/bin/true"]},
    }


def test_a_reinstalled_manifest_replaces_the_one_read_before(volantd: RunningDaemon) -> None:
    """Lookups may keep a validated manifest, but never past the row's next change."""
    assert volantd.request("POST", "/api/v1/plugins", _manifest("1.0.0", 8000)).status == 201
    first = volantd.request("GET", "/api/v1/plugins/svc").json()
    assert (first["version"], first["workload"]["base_url"]) == ("1.0.0", "http://127.0.0.1:8000")

    assert volantd.request("POST", "/api/v1/plugins", _manifest("1.1.0", 9000)).status == 201
    second = volantd.request("GET", "/api/v1/plugins/svc").json()
    assert (second["version"], second["workload"]["base_url"]) == ("1.1.0", "http://127.0.0.1:9000")

    assert volantd.request("POST", "/api/v1/plugins/svc/enabled", {"enabled": False}).status == 200
    assert volantd.request("GET", "/api/v1/plugins/svc/manifest").status == 409
    assert volantd.request("POST", "/api/v1/plugins/svc/enabled", {"enabled": True}).status == 200
    assert volantd.request("GET", "/api/v1/plugins/svc/manifest").json()["version"] == "1.1.0"
