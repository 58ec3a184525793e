"""Deployments under faults (issue 12, finding 6): failing members back off, a slow boot holds up
nothing else, a name held by a standalone VM is skipped, crashed members honour their restart
policy and are kept, with their reason and console log, until their replacement runs.

All on the test-host-process backend (real volantd, real kestrel processes, real sockets); the slow
boot is a member whose initramfs layer comes from an HTTP server on loopback that holds its answer
until the test lets it go.
"""

from __future__ import annotations

import copy
import http.server
import os
import signal
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from volant_core.guest.cpio import file_layer
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.waiting import eventually


class HeldArtifact:
    """An HTTP server on loopback serving one small initramfs layer; while :attr:`hold` is set,
    each request waits until it is cleared (a slow artifact URL).
    """

    def __init__(self) -> None:
        self.hold = threading.Event()
        self.requested = threading.Event()
        self._released = threading.Event()
        layer = file_layer({"volant/held.txt": b"held\n"})
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                """Answer with the layer, once the artifact is not held (any more)."""
                outer.requested.set()
                outer.wait_while_held()
                self.send_response(200)
                self.send_header("Content-Length", str(len(layer)))
                self.end_headers()
                self.wfile.write(layer)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/layer.cpio"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait_while_held(self) -> None:
        """Return at once unless :attr:`hold` is set; then when :meth:`release` is called."""
        if self.hold.is_set():
            self._released.wait(120)

    def release(self) -> None:
        """Answer every held request, and any later one, at once."""
        self.hold.clear()
        self._released.set()

    def close(self) -> None:
        """Stop the server."""
        self.release()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture
def held() -> Iterator[HeldArtifact]:
    """A :class:`HeldArtifact` server, closed at teardown."""
    server = HeldArtifact()
    try:
        yield server
    finally:
        server.close()


def install(api: RunningDaemon, base: dict[str, Any], name: str, initramfs_url: str) -> None:
    """Install ``base`` as runtime ``name`` whose initramfs layer is fetched from ``initramfs_url``."""
    manifest = copy.deepcopy(base)
    manifest["name"] = manifest["runtime"] = name
    manifest["initramfs"] = {"url": initramfs_url}
    answer = api.request("POST", "/api/v1/plugins", manifest)
    assert answer.status == 201, answer.body


def deploy(api: RunningDaemon, name: str, replicas: int, plugin: str = "hello-host", **config: Any) -> None:
    """Create deployment ``name``."""
    body = {"name": name, "replicas": replicas, "config": {"plugin": plugin, **config}}
    answer = api.request("POST", "/api/v1/deployments", body)
    assert answer.status == 201, answer.body


def deployment(api: RunningDaemon, name: str) -> dict[str, Any]:
    """GET of deployment ``name``."""
    answer = api.request("GET", f"/api/v1/deployments/{name}")
    assert answer.status == 200, answer.body
    return answer.json()


def running_members(api: RunningDaemon, name: str, count: int) -> dict[str, dict[str, Any]] | None:
    """Member name -> VM resource when exactly ``count`` members exist and all run, else None."""
    names = [m["name"] for m in deployment(api, name)["members"]]
    vms = {n: api.request("GET", f"/api/v1/vms/{n}").json() for n in names}
    ok = len(vms) == count and all(vm.get("status") == "running" for vm in vms.values())
    return vms if ok else None


def reconciled(api: RunningDaemon, name: str) -> list[str]:
    """The messages of the deployment's DEPLOYMENT_RECONCILED events, oldest first."""
    return [
        e.payload["message"]
        for e in api.daemon.store.events.since(0)
        if e.type == "DEPLOYMENT_RECONCILED" and e.vm_name == name
    ]


def attempt_numbers(api: RunningDaemon, member: str) -> list[int]:
    """The attempt numbers of the events saying ``member`` could not be created, oldest first."""
    deployment = member.rsplit("-", 1)[0]
    said = [m for m in reconciled(api, deployment) if m.startswith(f"could not create {member} ")]
    return [int(m.split("(attempt ")[1].split(")")[0]) for m in said]


def test_a_member_that_fails_to_create_backs_off_says_why_and_recovers(
    host_api: RunningDaemon, host_manifest: dict[str, Any]
) -> None:
    missing = host_api.state_dir / "images" / "missing-layer.cpio"
    install(host_api, host_manifest, "broken-host", str(missing))
    deploy(host_api, "bad", 1, plugin="broken-host")

    failing = eventually(
        lambda: [f for f in deployment(host_api, "bad")["status"]["failing"] if f["attempts"] >= 3],
        "a third failed attempt",
    )[0]
    assert failing["name"] == "bad-1" and failing["kind"] == "create_failed"
    assert "no such file" in failing["last_error"]
    waited = datetime.fromisoformat(failing["next_retry_at"]) - datetime.fromisoformat(failing["failed_at"])
    assert waited.total_seconds() == 1.0 * 2 ** (failing["attempts"] - 1)  # 1 s doubling
    # One event per attempt, never repeated: no flood.
    numbers = eventually(
        lambda: len(n := attempt_numbers(host_api, "bad-1")) >= 3 and n, "an event for each of 3 attempts"
    )
    assert numbers == list(range(1, len(numbers) + 1))
    assert host_api.request("GET", "/api/v1/vms").json() == []  # nothing half-created stays

    # Fixed: the member is created at its next attempt and the failure is forgotten.
    fixed = host_api.request("PATCH", "/api/v1/deployments/bad", {"config": {"plugin": "hello-host"}})
    assert fixed.status == 200, fixed.body
    eventually(lambda: running_members(host_api, "bad", 1), "bad-1 running", timeout=90)
    assert deployment(host_api, "bad")["status"]["failing"] == []


def test_a_slow_boot_holds_up_no_other_deployment_nor_a_delete(
    host_api: RunningDaemon, host_manifest: dict[str, Any], held: HeldArtifact
) -> None:
    install(host_api, host_manifest, "slow-host", held.url)
    held.hold.set()
    deploy(host_api, "slow", 1, plugin="slow-host")
    assert held.requested.wait(30), "the slow member's boot never fetched its artifact"
    assert deployment(host_api, "slow")["status"]["booting"] == ["slow-1"]

    # While slow-1 is stuck in its boot, another deployment reaches its replicas, scales and goes.
    deploy(host_api, "web", 2)
    eventually(lambda: running_members(host_api, "web", 2), "web at 2 replicas")
    assert host_api.request("PATCH", "/api/v1/deployments/web", {"replicas": 1}).status == 200
    eventually(lambda: running_members(host_api, "web", 1), "web at 1 replica")
    assert host_api.request("DELETE", "/api/v1/deployments/web").status == 204
    assert held.hold.is_set() and deployment(host_api, "slow")["status"]["booting"] == ["slow-1"]

    # The stuck deployment itself is deleted at once; its member goes when its boot returns.
    assert host_api.request("DELETE", "/api/v1/deployments/slow").status == 204
    assert host_api.request("GET", "/api/v1/deployments/slow").status == 404
    held.release()
    eventually(lambda: host_api.request("GET", "/api/v1/vms").json() == [], "no VM left")


def test_a_name_held_by_a_standalone_vm_is_skipped_and_reported(host_api: RunningDaemon) -> None:
    standalone = host_api.request("POST", "/api/v1/vms", {"name": "web-1", "plugin": "hello-host"})
    assert standalone.status == 201, standalone.body
    deploy(host_api, "web", 2)

    found = eventually(lambda: running_members(host_api, "web", 2), "web at 2 replicas")
    assert sorted(found) == ["web-2", "web-3"]
    skipped = deployment(host_api, "web")["status"]["skipped"]
    assert [s["name"] for s in skipped] == ["web-1"] and "outside this deployment" in skipped[0]["reason"]
    assert host_api.request("GET", "/api/v1/vms/web-1").json()["status"] in ("starting", "running")

    # The name given back, the report goes (the members keep their names).
    assert host_api.request("DELETE", "/api/v1/vms/web-1").status == 204
    eventually(lambda: deployment(host_api, "web")["status"]["skipped"] == [], "skip report gone")
    assert sorted(running_members(host_api, "web", 2) or {}) == ["web-2", "web-3"]


def test_a_crashed_member_honours_its_restart_policy(host_api: RunningDaemon) -> None:
    # The restart waits longer than the deployment's first backoff (1 s): a controller that replaced
    # the member meanwhile would be seen.
    policy = {"mode": "on-failure", "max_restarts": 1, "backoff_s": 2.5}
    deploy(host_api, "web", 1, restart_policy=policy)
    first = eventually(lambda: running_members(host_api, "web", 1), "web-1 running")["web-1"]

    # The policy allows one restart: the same member boots again in place.
    os.kill(first["pid"], signal.SIGKILL)
    again = eventually(
        lambda: (
            (found := running_members(host_api, "web", 1))
            and found.get("web-1", {}).get("pid") not in (None, first["pid"])
            and found
        ),
        "web-1 restarted in place",
    )["web-1"]
    assert not any(e.type == "VM_DELETED" for e in host_api.daemon.store.events.since(0))

    # The policy gave up: the deployment replaces the member.
    os.kill(again["pid"], signal.SIGKILL)
    replaced = eventually(
        lambda: (found := running_members(host_api, "web", 1)) and "web-1" not in found and found,
        "web-1 replaced",
    )
    assert list(replaced) == ["web-2"]
    assert any(m.startswith("web-1 crashed") for m in reconciled(host_api, "web"))


def test_a_crashed_member_is_kept_with_its_reason_and_log_until_its_replacement_runs(
    host_api: RunningDaemon, host_manifest: dict[str, Any], held: HeldArtifact
) -> None:
    install(host_api, host_manifest, "slow-host", held.url)
    deploy(host_api, "web", 1, plugin="slow-host")
    first = eventually(lambda: running_members(host_api, "web", 1), "web-1 running")["web-1"]

    held.hold.set()  # the replacement will be stuck in its boot
    os.kill(first["pid"], signal.SIGKILL)
    status = eventually(
        lambda: (d := deployment(host_api, "web"))["status"]["booting"] == ["web-2"] and d,
        "replacement web-2 booting",
    )
    crashed = {m["name"]: m for m in status["members"]}["web-1"]
    assert crashed["status"] == "crashed" and "VMM exited" in crashed["status_reason"]
    assert [(f["name"], f["kind"], f["replaced_by"]) for f in status["status"]["failing"]] == [
        ("web-1", "crashed", "web-2")
    ]
    assert host_api.request("GET", "/api/v1/vms/web-1").json()["status"] == "crashed"
    log = host_api.request("GET", "/api/v1/vms/web-1/logs")
    assert log.status == 200 and log.body.strip(), "the crashed member's console log is readable"

    held.release()
    eventually(lambda: list(running_members(host_api, "web", 1) or {}) == ["web-2"], "web-2 alone")
    assert host_api.request("GET", "/api/v1/vms/web-1").status == 404
    assert deployment(host_api, "web")["status"]["failing"] == []


def test_stopping_the_controller_waits_for_a_member_boot_in_flight(
    host_api: RunningDaemon, host_manifest: dict[str, Any], held: HeldArtifact
) -> None:
    """A daemon that stops while a member boots: the controller's stop returns only once that boot
    has ended, so no thread goes on creating a VM (and launching its VMM) after the daemon stopped.
    """
    install(host_api, host_manifest, "slow-host", held.url)
    held.hold.set()
    deploy(host_api, "slow", 1, plugin="slow-host")
    assert held.requested.wait(30), "the slow member's boot never fetched its artifact"
    stopper = threading.Thread(target=host_api.daemon.deployments.stop)
    stopper.start()
    stopper.join(1.0)
    assert stopper.is_alive(), "stop() returned while a member's boot was still in flight"
    held.release()
    stopper.join(60)
    assert not stopper.is_alive()
    assert not [t for t in threading.enumerate() if t.name == "member-slow-1"]
    assert host_api.request("GET", "/api/v1/vms/slow-1").json()["status"] in ("starting", "running")
