"""Bad input through the real HTTP API: a 4xx naming the field, and nothing left behind."""

from __future__ import annotations

import copy
import http.client
from pathlib import Path
from typing import Any

import pytest

from volant_core.api.app import MAX_BODY_BYTES
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import host_process_daemon


def _field(response: Any) -> str:
    return response.json()["error"]["details"][0]["field"]


def _assert_nothing_left(volantd: RunningDaemon) -> None:
    store = volantd.daemon.store
    assert store.vms.list() == []
    assert store.ips.leased() == []
    run_dir = volantd.daemon.settings.runtime_dir
    assert not run_dir.exists() or list(run_dir.iterdir()) == []


def test_unknown_plugin_is_404_naming_the_field(volantd: RunningDaemon) -> None:
    response = volantd.request("POST", "/api/v1/vms", {"name": "web-1", "plugin": "no-such-runtime"})
    assert response.status == 404
    assert _field(response) == "plugin"
    assert "no-such-runtime" in response.json()["error"]["message"]
    _assert_nothing_left(volantd)


def test_manifest_without_workload_is_refused(volantd: RunningDaemon, hello_manifest: dict) -> None:
    broken = {k: v for k, v in hello_manifest.items() if k != "workload"}
    response = volantd.request("POST", "/api/v1/plugins", broken)
    assert response.status == 422
    assert _field(response) == "workload"
    assert volantd.request("GET", "/api/v1/plugins").json()["plugins"] == []


@pytest.mark.parametrize("name", ["../x", "", "a" * 200, "Upper", "-lead", "sp ace", "a/b", "web\n"])
def test_invalid_vm_names_are_refused(volantd: RunningDaemon, hello_manifest: dict, name: str) -> None:
    assert volantd.request("POST", "/api/v1/plugins", hello_manifest).status == 201
    response = volantd.request("POST", "/api/v1/vms", {"name": name, "plugin": "hello-http"})
    assert response.status == 422
    assert _field(response) == "name"
    assert "is not a valid name; use 1-63 characters" in response.json()["error"]["message"]
    _assert_nothing_left(volantd)


@pytest.mark.parametrize("path", ["/api/v1/deployments/Web", "/api/v1/vms/Web/config"])
def test_invalid_names_in_paths_are_refused_with_the_rule(volantd: RunningDaemon, path: str) -> None:
    response = volantd.request("GET", path)
    assert response.status == 422
    assert _field(response) == "name"
    assert "'Web' is not a valid name; use 1-63 characters" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("name", "shown"),
    [("a" * 70, repr("a" * 70)), ("a" * 71, repr("a" * 60 + "..."))],
    ids=["70 shown whole", "71 shortened"],
)
def test_a_refused_name_is_quoted_at_most_70_characters_long(
    volantd: RunningDaemon, name: str, shown: str
) -> None:
    response = volantd.request("POST", "/api/v1/deployments", {"name": name, "config": {"plugin": "x"}})
    assert response.status == 422
    assert _field(response) == "name"
    assert f"{shown} is not a valid name" in response.json()["error"]["message"]


def test_unknown_hypervisor_lists_the_registered_ones(volantd: RunningDaemon, hello_manifest: dict) -> None:
    volantd.request("POST", "/api/v1/plugins", hello_manifest)
    response = volantd.request(
        "POST", "/api/v1/vms", {"name": "a", "plugin": "hello-http", "hypervisor": "xen"}
    )
    assert response.status == 404
    assert _field(response) == "hypervisor"
    registered = volantd.request("GET", "/api/v1/system/info").json()["extensions"]["hypervisors"]
    names = ", ".join(sorted(d["name"] for d in registered if "test-only" not in d["capabilities"]))
    assert "qemu" in names
    assert response.json()["error"]["message"].startswith(f"unknown hypervisor 'xen'; choose one of: {names}")
    _assert_nothing_left(volantd)


def test_failed_boot_media_undoes_the_create(volantd: RunningDaemon, hello_manifest: dict) -> None:
    manifest = copy.deepcopy(hello_manifest)
    manifest["initramfs"] = {"url": str(volantd.state_dir / "images" / "missing.cpio.gz")}
    assert volantd.request("POST", "/api/v1/plugins", manifest).status == 201  # it may appear later
    response = volantd.request("POST", "/api/v1/vms", {"name": "undo-me", "plugin": "hello-http"})
    assert response.status == 422
    assert _field(response) == "manifest.initramfs.url"
    _assert_nothing_left(volantd)
    types = [e.type for e in volantd.daemon.store.events.since(0)]
    assert types[-1] == "VM_DELETED"


def test_body_that_is_not_json_or_too_large(volantd: RunningDaemon) -> None:
    assert volantd.request("POST", "/api/v1/vms", raw=b"{nope").status == 422
    # The limit is enforced from Content-Length, before the body is read.
    host, port = volantd.daemon.server.address
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.putrequest("POST", "/api/v1/plugins")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 413
    assert "request body over" in answer.read().decode()
    connection.close()
    _assert_nothing_left(volantd)


def test_unknown_fields_and_missing_vm(volantd: RunningDaemon) -> None:
    response = volantd.request("POST", "/api/v1/vms", {"name": "a", "plugin": "p", "cpus": 2})
    assert response.status == 422
    assert _field(response) == "cpus"
    for method, path in [
        ("GET", "/api/v1/vms/ghost"),
        ("DELETE", "/api/v1/vms/ghost"),
        ("POST", "/api/v1/vms/ghost/stop"),
    ]:
        answer = volantd.request(method, path)
        assert answer.status == 404, (method, path)
        assert answer.json()["error"]["code"] == "not_found"


def test_a_vm_directory_too_long_for_its_sockets_is_refused_before_anything_is_written(
    host_manifest: dict[str, Any], tmp_path: Path
) -> None:
    runtime_dir = tmp_path / ("d" * (80 - len(str(tmp_path))))  # 80 bytes: room for short names only
    with host_process_daemon(runtime_dir=runtime_dir) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        answer = api.request("POST", "/api/v1/vms", {"name": "long-name-1", "plugin": "hello-host"})
        assert answer.status == 422, answer.body
        error = answer.json()["error"]
        assert error["details"][0]["field"] == "name"
        assert "VOLANT_RUNTIME_DIR" in error["message"]
        assert api.request("GET", "/api/v1/vms").json() == []
        assert not (runtime_dir / "long-name-1").exists()
        # a short name leaves the room; the VM's resource says where its sockets and logs are
        created = api.request("POST", "/api/v1/vms", {"name": "a", "plugin": "hello-host"})
        assert created.status == 201, created.body
        assert created.json()["runtime_dir"] == str(runtime_dir / "a")
        assert api.request("GET", "/api/v1/vms/a").json()["runtime_dir"] == str(runtime_dir / "a")
