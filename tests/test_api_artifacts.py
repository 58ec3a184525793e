"""Host files and names the API accepts (issue 9, items 8 and 9), through a real daemon over HTTP.

Images must lie under the artifact directories (``<state_dir>/images`` of the test daemon),
resolved after symbolic links, and a qcow2 must keep its backing chain there; runtime names
are DNS labels; a user's kernel arguments may not set Volant's own keys. Every refusal is a
422 naming the field, and leaves nothing behind: no catalog row, no cache file, no VM, no
new configuration version. The files accepted and downloaded are listed in the image cache with
the VMs that name them, which a prune keeps.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import http.server
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core import hookimpl
from volant_core.guest import file_layer
from volant_core.launch import Capability, HypervisorDescriptor
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import HostProcessLauncher, host_process_daemon
from volant_core.testing.qcow2 import write_qcow2

OUTSIDE = "is outside the directories Volant reads images from"
FIX = "add its directory to VOLANT_ARTIFACT_DIRS"


def images_of(daemon: RunningDaemon) -> Path:
    """The daemon's ``<state_dir>/images`` (an artifact directory by default)."""
    return daemon.state_dir / "images"


def _outside_file(daemon: RunningDaemon) -> Path:
    """A file in the state directory, next to ``state.db``: not an artifact directory."""
    path = daemon.state_dir / "not-an-image.img"
    path.write_bytes(b"private")
    return path


def _link_out(daemon: RunningDaemon) -> str:
    link = images_of(daemon) / "link.img"
    link.symlink_to("/etc/hostname")
    return str(link)


def _backed_outside(daemon: RunningDaemon) -> str:
    outside = _outside_file(daemon)
    return str(write_qcow2(images_of(daemon) / "child.qcow2", backing=str(outside), backing_format="raw"))


def _backed_by_state_db(daemon: RunningDaemon) -> str:
    return str(write_qcow2(images_of(daemon) / "child.qcow2", backing="../state.db", backing_format="raw"))


#: Locations volantd must not read, each made for a given daemon.
BAD_FILES: dict[str, Callable[[RunningDaemon], str]] = {
    "etc-shadow": lambda _daemon: "/etc/shadow",
    "file-url": lambda _daemon: "file:///etc/passwd",
    "proc-environ": lambda _daemon: "/proc/self/environ",
    "symlink-out": _link_out,
}
#: qcow2 images inside the allowlist whose backing file is not.
BAD_QCOW2: dict[str, Callable[[RunningDaemon], str]] = {
    "backing-outside": _backed_outside,
    "backing-relative-state-db": _backed_by_state_db,
}


def _refused(reply: Any, field: str) -> str:
    """Assert a 422 naming ``field``; its message."""
    assert reply.status == 422, reply.body
    error = reply.json()["error"]
    assert error["details"][0]["field"] == field
    assert error["message"].startswith(f"{field}: ")
    return str(error["message"])


def _nothing_installed_or_cached(daemon: RunningDaemon) -> None:
    assert daemon.daemon.store.runtimes.list() == []
    assert daemon.request("GET", "/api/v1/plugins").json()["plugins"] == []
    downloads = daemon.daemon.settings.download_dir
    assert not downloads.exists() or not any(p.is_file() for p in downloads.rglob("*"))


def _with_medium(manifest: dict[str, Any], field: str, location: str, image_format: str) -> dict[str, Any]:
    """``manifest`` booting ``location`` as the medium named by ``field``."""
    changed = copy.deepcopy(manifest)
    if field == "disks[0].source":
        changed["disks"] = [{"name": "data", "source": location, "format": image_format}]
    elif field == "rootfs.url":
        changed["rootfs"] = {"url": location, "format": image_format}
    else:
        changed["initramfs"] = {"url": location}
    return changed


CASES = [
    *[
        (field, case, "raw")
        for field in ("disks[0].source", "rootfs.url", "initramfs.url")
        for case in BAD_FILES
    ],
    *[(field, case, "qcow2") for field in ("disks[0].source", "rootfs.url") for case in BAD_QCOW2],
]


@pytest.mark.parametrize(("field", "case", "image_format"), CASES)
def test_install_refuses_files_outside_the_artifact_directories(
    volantd: RunningDaemon, hello_manifest: dict[str, Any], field: str, case: str, image_format: str
) -> None:
    location = {**BAD_FILES, **BAD_QCOW2}[case](volantd)
    reply = volantd.request(
        "POST", "/api/v1/plugins", _with_medium(hello_manifest, field, location, image_format)
    )
    message = _refused(reply, field)
    assert OUTSIDE in message and FIX in message
    _nothing_installed_or_cached(volantd)


def test_install_refuses_a_file_declared_qcow2_that_is_not(
    volantd: RunningDaemon, hello_manifest: dict[str, Any]
) -> None:
    plain = images_of(volantd) / "plain.img"
    plain.write_bytes(b"raw bytes")
    reply = volantd.request(
        "POST", "/api/v1/plugins", _with_medium(hello_manifest, "rootfs.url", str(plain), "qcow2")
    )
    assert "is declared qcow2 but is not a qcow2 image" in _refused(reply, "rootfs.url")
    _nothing_installed_or_cached(volantd)


def test_install_accepts_images_inside_the_artifact_directories(
    volantd: RunningDaemon, hello_manifest: dict[str, Any]
) -> None:
    (images_of(volantd) / "base.img").write_bytes(b"base")
    write_qcow2(images_of(volantd) / "disk.qcow2", backing="base.img", backing_format="raw")
    manifest = _with_medium(
        hello_manifest, "disks[0].source", str(images_of(volantd) / "disk.qcow2"), "qcow2"
    )
    manifest["rootfs"] = {"url": f"file://{images_of(volantd)}/not-yet-there.img"}  # checked again at boot
    assert volantd.request("POST", "/api/v1/plugins", manifest).status == 201


OVERRIDES = ["rootfs", "initramfs", "kernel_override"]


def _override(key: str, location: str) -> dict[str, Any]:
    return {key: location if key == "kernel_override" else {"url": location}}


def _override_field(key: str) -> str:
    return key if key == "kernel_override" else f"{key}.url"


@pytest.mark.parametrize("key", OVERRIDES)
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_create_refuses_config_overrides_outside(
    volantd: RunningDaemon, hello_manifest: dict[str, Any], key: str, case: str
) -> None:
    assert volantd.request("POST", "/api/v1/plugins", hello_manifest).status == 201
    body = {"name": "web-1", "plugin": "hello-http", "config": _override(key, BAD_FILES[case](volantd))}
    assert OUTSIDE in _refused(volantd.request("POST", "/api/v1/vms", body), _override_field(key))
    assert volantd.daemon.store.vms.list() == []
    assert [e.type for e in volantd.daemon.store.events.since(0) if e.vm_name] == []  # refused before a row
    run_dir = volantd.daemon.settings.runtime_dir
    assert not run_dir.exists() or list(run_dir.iterdir()) == []


def test_create_refuses_a_qcow2_rootfs_override_backed_outside(
    volantd: RunningDaemon, hello_manifest: dict[str, Any]
) -> None:
    """The override's declared format is what decides that its backing chain is inspected."""
    assert volantd.request("POST", "/api/v1/plugins", hello_manifest).status == 201
    rootfs = {"url": _backed_outside(volantd), "format": "qcow2"}
    body = {"name": "web-1", "plugin": "hello-http", "config": {"rootfs": rootfs}}
    assert OUTSIDE in _refused(volantd.request("POST", "/api/v1/vms", body), "rootfs.url")
    assert volantd.daemon.store.vms.list() == []


@pytest.fixture
def host_vm(host_api: RunningDaemon) -> Iterator[str]:
    """A VM of ``hello-host`` on the host-process backend."""
    assert host_api.request("POST", "/api/v1/vms", {"name": "patched", "plugin": "hello-host"}).status == 201
    yield "patched"


@pytest.mark.parametrize("key", OVERRIDES)
def test_patch_refuses_config_overrides_outside(host_api: RunningDaemon, host_vm: str, key: str) -> None:
    config = f"/api/v1/vms/{host_vm}/config"
    before = host_api.request("GET", f"{config}/history").json()
    reply = host_api.request("PATCH", config, _override(key, _link_out(host_api)))
    assert OUTSIDE in _refused(reply, _override_field(key))
    assert host_api.request("GET", f"{config}/history").json() == before


def test_patch_refuses_a_manifest_whose_disk_is_outside(host_api: RunningDaemon, host_vm: str) -> None:
    config = f"/api/v1/vms/{host_vm}/config"
    current = host_api.request("GET", config).json()["config"]["manifest"]
    manifest = _with_medium(current, "disks[0].source", _backed_outside(host_api), "qcow2")
    before = host_api.request("GET", f"{config}/history").json()
    reply = host_api.request("PATCH", config, {"manifest": manifest})
    assert OUTSIDE in _refused(reply, "manifest.disks[0].source")
    assert host_api.request("GET", f"{config}/history").json() == before


def _create_fails_at_boot(daemon: RunningDaemon, field: str) -> str:
    """Create a VM of ``hello-http``: refused at boot naming ``field``, nothing left; the message."""
    reply = daemon.request("POST", "/api/v1/vms", {"name": "late", "plugin": "hello-http"})
    message = _refused(reply, field)
    assert daemon.daemon.store.vms.list() == []
    return message


def test_a_disk_swapped_for_a_link_after_install_is_refused_at_create(
    volantd: RunningDaemon, hello_manifest: dict[str, Any]
) -> None:
    """A VM's configuration snapshots the manifest: its files are checked again when a VM is made."""
    target = Path("/etc/hostname")
    disk = images_of(volantd) / "data.img"
    disk.write_bytes(target.read_bytes())
    manifest = _with_medium(hello_manifest, "disks[0].source", str(disk), "raw")
    manifest["disks"][0]["checksum"] = hashlib.sha256(target.read_bytes()).hexdigest()
    assert volantd.request("POST", "/api/v1/plugins", manifest).status == 201
    disk.unlink()
    disk.symlink_to(target)
    assert OUTSIDE in _create_fails_at_boot(volantd, "manifest.disks[0].source")
    assert not volantd.daemon.settings.download_dir.exists()  # the checksummed file was not copied


def test_a_qcow2_given_a_backing_file_after_install_is_refused_at_boot(
    volantd: RunningDaemon, hello_manifest: dict[str, Any]
) -> None:
    rootfs = write_qcow2(images_of(volantd) / "root.qcow2")
    manifest = _with_medium(hello_manifest, "rootfs.url", str(rootfs), "qcow2")
    assert volantd.request("POST", "/api/v1/plugins", manifest).status == 201
    write_qcow2(rootfs, backing="/etc/shadow", backing_format="raw")
    assert OUTSIDE in _create_fails_at_boot(volantd, "manifest.rootfs.url")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``(base URL, directory)``: a real HTTP server on loopback serving ``directory``."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_downloaded_qcow2_naming_a_backing_file_outside_is_refused_at_boot(
    volantd: RunningDaemon, hello_manifest: dict[str, Any], served: tuple[str, Path]
) -> None:
    url, directory = served
    write_qcow2(directory / "evil.qcow2", backing="/etc/shadow", backing_format="raw")
    manifest = _with_medium(hello_manifest, "disks[0].source", f"{url}/evil.qcow2", "qcow2")
    manifest["disks"][0]["readonly"] = True
    assert volantd.request("POST", "/api/v1/plugins", manifest).status == 201  # not read at install
    reply = volantd.request("POST", "/api/v1/vms", {"name": "late", "plugin": "hello-http"})
    assert reply.status == 201, reply.body  # a download happens after the answer (ADR 0036)
    vm = volantd.wait_for_status("late", {"crashed"}, timeout=60)
    message = vm["status_reason"]
    assert "manifest.disks[0].source" in message
    assert "the backing file '/etc/shadow'" in message and OUTSIDE in message


class HostProcessWithDisks:
    """TEST double: registers ``test-host-process-disks``, the host-process backend declaring disks (it
    attaches none: kestrel runs on the host), so a runtime with a rootfs and disks can be installed
    and its VMs booted.
    """

    @hookimpl
    def volant_hypervisors(self) -> list[HypervisorDescriptor]:
        """``test-host-process-disks``."""
        capabilities = frozenset({Capability.DISKS, Capability.ADOPT})
        return [
            HypervisorDescriptor(
                "test-host-process-disks", HostProcessLauncher, "TEST ONLY", capabilities=capabilities
            )
        ]


def _checksummed(directory: Path, name: str, content: bytes) -> str:
    """Serve ``content`` as ``directory/name``; its checksum (``sha256:<hex>``)."""
    (directory / name).write_bytes(content)
    return f"sha256:{hashlib.sha256(content).hexdigest()}"


def test_the_image_cache_names_the_vms_using_each_checksummed_medium_and_prune_keeps_them(
    host_manifest: dict[str, Any], served: tuple[str, Path]
) -> None:
    """A checksummed rootfs, disk or initramfs a kept VM's configuration names is in use (found by
    its checksum: no URL record is kept for it): ``GET /api/v1/images/cache`` lists the VM with it
    and a prune leaves it; once no VM names it, a prune removes it.
    """
    url, directory = served
    root = _checksummed(directory, "root.img", b"root" * 1024)
    data = _checksummed(directory, "data.img", b"data" * 1024)
    layer = _checksummed(directory, "layer.img", file_layer({"/etc/layer": b"layer" * 1024}))
    manifest = {
        **host_manifest,
        "rootfs": {"url": f"{url}/root.img", "checksum": root},
        "disks": [{"name": "data", "source": f"{url}/data.img", "checksum": data, "readonly": True}],
    }
    plugins = [("host-process-disks", HostProcessWithDisks())]
    with host_process_daemon(plugins=plugins, hypervisor="test-host-process-disks", stop_timeout=5) as api:
        answer = api.request("POST", "/api/v1/plugins", manifest)
        assert answer.status == 201, answer.body
        initramfs = {"initramfs": {"url": f"{url}/layer.img", "checksum": layer}}
        for name, config in (("rooted", {}), ("layered", initramfs)):
            body = {"name": name, "plugin": "hello-host", "config": config}
            answer = api.request("POST", "/api/v1/vms", body)
            assert answer.status == 201, answer.body
            vm = api.wait_for_status(name, {"running", "crashed"}, timeout=60)  # after the downloads
            assert vm["status"] == "running", vm

        def used() -> dict[str, list[str]]:
            entries = api.request("GET", "/api/v1/images/cache").json()["entries"]
            return {entry["digest"]: entry["used_by"] for entry in entries}

        assert used() == {root: ["rooted"], data: ["layered", "rooted"], layer: ["layered"]}
        assert api.request("POST", "/api/v1/images/cache/prune").json()["removed"] == []
        assert used() == {root: ["rooted"], data: ["layered", "rooted"], layer: ["layered"]}

        assert api.request("DELETE", "/api/v1/vms/rooted").status == 204
        removed = api.request("POST", "/api/v1/images/cache/prune").json()["removed"]
        assert [entry["digest"] for entry in removed] == [root]
        assert used() == {data: ["layered"], layer: ["layered"]}


def test_a_kernel_override_and_a_layer_at_urls_are_downloaded_as_their_vm_starts_with_progress(
    host_api: RunningDaemon, served: tuple[str, Path]
) -> None:
    """The VM's ``VM_DOWNLOAD_PROGRESS`` events name each download's field and URL (the kernel
    override, fetched on its own, and an initramfs layer, fetched with the boot media); the last one
    of each counts the whole file.
    """
    url, directory = served
    kernel = b"not a real kernel: the host-process backend boots none"
    layer = file_layer({"/etc/layer": b"layer"})
    (directory / "vmlinuz").write_bytes(kernel)
    (directory / "layer.img").write_bytes(layer)
    config = {"kernel_override": f"{url}/vmlinuz", "initramfs": {"url": f"{url}/layer.img"}}
    answer = host_api.request(
        "POST", "/api/v1/vms", {"name": "fetches", "plugin": "hello-host", "config": config}
    )
    assert answer.status == 201, answer.body
    assert host_api.wait_for_status("fetches", {"running", "crashed"}, timeout=60)["status"] == "running"
    last = {
        e.payload["data"]["field"]: e.payload["data"]
        for e in host_api.daemon.store.events.since(0)
        if e.type == "VM_DOWNLOAD_PROGRESS" and e.vm_name == "fetches"
    }
    assert last == {
        field: {"field": field, "url": f"{url}/{name}", "done": len(content), "total": len(content)}
        for field, name, content in (
            ("kernel_override", "vmlinuz", kernel),
            ("manifest.initramfs.url", "layer.img", layer),
        )
    }


BAD_NAMES = ["../x", "a b", "x,y=z", "a" * 300, "caf\u00e9", ".hidden", "-dash", "Upper", "a_b", "x\ny"]


@pytest.mark.parametrize("key", ["name", "runtime"])
@pytest.mark.parametrize("name", BAD_NAMES)
def test_install_refuses_names_that_are_not_dns_labels(
    volantd: RunningDaemon, hello_manifest: dict[str, Any], key: str, name: str
) -> None:
    manifest = {**hello_manifest, key: name}
    reply = volantd.request("POST", "/api/v1/plugins", manifest)
    assert "is not a valid name; use 1-63 characters" in _refused(reply, key)
    _nothing_installed_or_cached(volantd)


@pytest.mark.parametrize("name", ["x,y=z", "Bad_Name"])
def test_a_stored_row_from_before_the_rule_is_skipped_and_can_be_removed(
    volantd: RunningDaemon, hello_manifest: dict[str, Any], name: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert volantd.request("POST", "/api/v1/plugins", hello_manifest).status == 201
    volantd.daemon.store.runtimes.upsert(name, "0.1", {**hello_manifest, "name": name}, enabled=True)
    with caplog.at_level(logging.WARNING, logger="volant_core.runtimes"):
        listed = volantd.request("GET", "/api/v1/plugins")
    assert listed.status == 200
    assert [plugin["name"] for plugin in listed.json()["plugins"]] == ["hello-http"]
    assert any(name in record.getMessage() and "invalid" in record.getMessage() for record in caplog.records)
    assert volantd.request("DELETE", f"/api/v1/plugins/{name}").status in (200, 204)
    assert [record.name for record in volantd.daemon.store.runtimes.list()] == ["hello-http"]


RESERVED = [
    "volant.name",
    "volant.runtime",
    "volant.manifest",
    "volant.rootfs",
    "volant.ip",
    "volant.gw",
    "volant.dns",
    "volant.hostname",
]


@pytest.mark.parametrize("where", ["top", "config"])
@pytest.mark.parametrize(
    "cmdline", [*(f"quiet {key}=evil" for key in RESERVED), "a\x01b", "a\tb", "x=\u00e9", "x=1\nvolant.ip=1"]
)
def test_create_refuses_kernel_arguments_volant_sets_or_cannot_pass(
    volantd: RunningDaemon, hello_manifest: dict[str, Any], cmdline: str, where: str
) -> None:
    assert volantd.request("POST", "/api/v1/plugins", hello_manifest).status == 201
    body: dict[str, Any] = {"name": "web-1", "plugin": "hello-http"}
    if where == "top":
        body["kernel_cmdline"] = cmdline
    else:
        body["config"] = {"kernel_cmdline": cmdline}
    field = "kernel_cmdline" if where == "top" else "config.kernel_cmdline"
    message = _refused(volantd.request("POST", "/api/v1/vms", body), field)
    assert "is set by Volant itself" in message or "printable ASCII" in message
    assert volantd.daemon.store.vms.list() == []


def test_the_users_console_knob_stays_allowed(host_api: RunningDaemon, host_vm: str) -> None:
    config = f"/api/v1/vms/{host_vm}/config"
    # Keys that only contain a reserved one are other keys.
    allowed = "volant.ui=1 volant.console=off Xvolant.ip=1 myvolant.name=x"
    assert host_api.request("PATCH", config, {"kernel_cmdline": allowed}).status == 200
    reply = host_api.request("PATCH", config, {"kernel_cmdline": "volant.console=off volant.rootfs=/dev/sda"})
    assert _refused(reply, "kernel_cmdline") == (
        "kernel_cmdline: volant.rootfs is set by Volant itself; remove it (reserved: "
        f"{', '.join(sorted(RESERVED))})"
    )
