"""Artifact downloads (issue 12, finding 9; ADR 0030) against real HTTP(S) servers on loopback.

The servers misbehave on purpose: a body shorter than its ``Content-Length``, a chunked body cut
off, a redirect to another scheme, a body that trickles forever. Every such download is an error
naming the URL and leaves no file in the cache; a failure while a VM boots ends it ``crashed``
with the reason. A full disk is a small tmpfs (mounted as root for the test).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core import artifacts
from volant_core.artifact_cache import PARTIAL_PREFIX, ArtifactCache, Progress
from volant_core.errors import ValidationError, VolantError
from volant_core.guest import file_layer
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import host_process_daemon
from volant_core.testing.store_faults import fill_disk, small_tmpfs

#: What the well-behaved paths serve.
BODY = os.urandom(300_000)
DIGEST = hashlib.sha256(BODY).hexdigest()
#: How many bytes ``/drip`` sends, one every 50 ms.
DRIP_BYTES = 100
#: The layer the VM's runtime adds to its initramfs in the API tests.
LAYER = file_layer({"/etc/artifact-test": b"served\n"})


class ArtifactHandler(http.server.BaseHTTPRequestHandler):
    """``/good`` (with ETag, 304 for a matching ``If-None-Match``), ``/plain`` (no validators),
    ``/short`` (body shorter than announced), ``/cut`` (chunked, cut off), ``/drip`` (chunked, a
    byte at a time for 5 s), ``/redirect?to=URL`` (302), ``/layer`` (the initramfs
    layer, or cut off while ``server.cut_layer`` is set).
    """

    protocol_version = "HTTP/1.1"
    server: ArtifactServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on what the client sees."""

    def do_GET(self) -> None:
        """Answer as the path says."""
        url = urllib.parse.urlparse(self.path)
        self.server.requests.append(url.path)
        if url.path == "/redirect":
            self._head(302, Location=urllib.parse.parse_qs(url.query)["to"][0], **{"Content-Length": "0"})
        elif url.path == "/good":
            if self.headers.get("If-None-Match") == self.server.etag:
                self._head(304, ETag=self.server.etag)
            else:
                self._send(self.server.body, ETag=self.server.etag)
        elif url.path == "/plain":
            self._send(BODY)
        elif url.path == "/short":
            self._head(200, **{"Content-Length": str(len(BODY) + 1000)})
            self.wfile.write(BODY)
            self.close_connection = True
        elif url.path == "/cut" or (url.path == "/layer" and self.server.cut_layer):
            self._head(200, **{"Transfer-Encoding": "chunked"})
            self.wfile.write(b"%x\r\n%s\r\n" % (1000, BODY[:1000]))
            self.close_connection = True
        elif url.path == "/layer":
            self._send(LAYER)
        elif url.path == "/drip":
            self._head(200, **{"Transfer-Encoding": "chunked"})
            with contextlib.suppress(ConnectionError):  # the client gave up
                for _ in range(DRIP_BYTES):  # 5 s: well past the deadline the test gives
                    if self.server.stopping.wait(0.05):
                        break
                    self.wfile.write(b"1\r\nx\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
        else:
            self._head(404, **{"Content-Length": "0"})

    def _send(self, body: bytes, **headers: str) -> None:
        self._head(200, **{"Content-Length": str(len(body)), **headers})
        self.wfile.write(body)

    def _head(self, status: int, **headers: str) -> None:
        self.server.answers.append(status)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()


class ArtifactServer(http.server.ThreadingHTTPServer):
    """A real HTTP server on 127.0.0.1 (port chosen by the kernel), optionally over TLS."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), ArtifactHandler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.body = BODY
        self.etag = '"v1"'
        self.cut_layer = False
        self.requests: list[str] = []
        self.answers: list[int] = []
        self.stopping = threading.Event()

    def url(self, path: str) -> str:
        """The URL of ``path`` on this server."""
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}{path}"


@contextlib.contextmanager
def serving(tls: ssl.SSLContext | None = None) -> Iterator[ArtifactServer]:
    """An :class:`ArtifactServer` serving in a thread; shut down (and its dripping bodies ended) after."""
    server = ArtifactServer(tls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def server() -> Iterator[ArtifactServer]:
    """A plain HTTP :class:`ArtifactServer`."""
    with serving() as running:
        yield running


@pytest.fixture
def tls_server(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ArtifactServer]:
    """An HTTPS :class:`ArtifactServer` with a self-signed certificate for 127.0.0.1, which this
    process trusts (``SSL_CERT_FILE``, read by Python's default TLS context).
    """
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with serving(context) as running:
        yield running


def cache_files(cache: Path) -> list[str]:
    """Every file in the download cache, partial ones included, relative to it."""
    return (
        sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()) if cache.exists() else []
    )


def fetch(
    url: str,
    checksum: str | None,
    cache: Path,
    *,
    deadline: float | None = None,
    progress: Progress | None = None,
) -> Path:
    """Fetch ``url`` into the artifact cache at ``cache`` as volantd does, through the core's HTTP
    source (its file source for a local path); ``deadline`` defaults to a minute from now.
    """
    source = artifacts.open_http if url.startswith("http") else artifacts.open_file
    deadline = time.monotonic() + 60 if deadline is None else deadline
    return ArtifactCache(cache).fetch(url, checksum, source, deadline=deadline, progress=progress)


def stored_files(cache: Path) -> list[str]:
    """The files of the cache but resumable partial downloads (``partial/``)."""
    return [name for name in cache_files(cache) if not name.startswith("partial/")]


def fetch_fails(url: str, cache: Path, **options: Any) -> str:
    """Fetch ``url`` with a checksum of :data:`BODY`; it must fail storing nothing (but what it can
    resume); the message.
    """
    with pytest.raises(ValidationError) as failure:
        fetch(url, f"sha256:{DIGEST}", cache, **options)
    assert stored_files(cache) == []
    return failure.value.message


# ----------------------------------------------------------------------- lengths and redirects


def test_a_complete_download_is_stored_under_its_checksum(server: ArtifactServer, tmp_path: Path) -> None:
    path = fetch(server.url("/good"), f"sha256:{DIGEST}", tmp_path)
    assert path == tmp_path / "sha256" / DIGEST and path.read_bytes() == BODY


def test_a_body_shorter_than_its_content_length_is_an_error(server: ArtifactServer, tmp_path: Path) -> None:
    message = fetch_fails(server.url("/short"), tmp_path)
    assert f"the source sent {len(BODY)} of the {len(BODY) + 1000} bytes it announced" in message


def test_a_short_body_is_refused_without_a_checksum_too(server: ArtifactServer, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="bytes it announced"):
        fetch(server.url("/short"), None, tmp_path)
    assert stored_files(tmp_path) == []


def test_a_chunked_body_cut_off_is_an_error(server: ArtifactServer, tmp_path: Path) -> None:
    message = fetch_fails(server.url("/cut"), tmp_path)
    assert server.url("/cut") in message and "the connection ended in the middle of the body" in message


def test_a_redirect_to_another_scheme_is_refused(server: ArtifactServer, tmp_path: Path) -> None:
    target = "ftp://127.0.0.1:21/artifact"
    message = fetch_fails(server.url(f"/redirect?to={target}"), tmp_path)
    assert f"redirected (302) to {target}, another scheme" in message


def test_a_redirect_from_https_down_to_http_is_refused(
    tls_server: ArtifactServer, server: ArtifactServer, tmp_path: Path
) -> None:
    plain = server.url("/good")
    message = fetch_fails(tls_server.url(f"/redirect?to={plain}"), tmp_path)
    assert "never from https to http" in message
    assert "/good" not in server.requests  # the plain-text server was never asked


def test_redirects_to_another_host_or_up_to_https_are_followed(
    tls_server: ArtifactServer, server: ArtifactServer, tmp_path: Path
) -> None:
    with serving() as other:  # another port: another origin
        path = fetch(server.url(f"/redirect?to={other.url('/good')}"), None, tmp_path / "a")
        assert path.read_bytes() == BODY and other.requests == ["/good"]
    upgraded = fetch(server.url(f"/redirect?to={tls_server.url('/good')}"), None, tmp_path / "b")
    assert upgraded.read_bytes() == BODY and tls_server.requests == ["/good"]


def test_a_download_that_trickles_past_its_deadline_is_given_up(
    server: ArtifactServer, tmp_path: Path
) -> None:
    message = fetch_fails(server.url("/drip"), tmp_path, deadline=time.monotonic() + 1)
    assert "took longer than VOLANT_ARTIFACT_DEADLINE allows" in message


# ------------------------------------------------------------------- artifacts without a checksum


def test_an_unchecksummed_artifact_is_revalidated_not_downloaded_again(
    server: ArtifactServer, tmp_path: Path
) -> None:
    first = fetch(server.url("/good"), None, tmp_path)
    again = fetch(server.url("/good"), None, tmp_path)
    assert again == first and again.read_bytes() == BODY
    assert server.answers == [200, 304]  # the second answer had no body
    server.body, server.etag = b"version 2", '"v2"'
    changed = fetch(server.url("/good"), None, tmp_path)
    assert changed.read_bytes() == b"version 2"


def test_an_unchecksummed_artifact_without_validators_is_downloaded_every_time(
    server: ArtifactServer, tmp_path: Path
) -> None:
    for _ in range(2):
        assert fetch(server.url("/plain"), None, tmp_path).read_bytes() == BODY
    assert not (tmp_path / "url").exists() or not any((tmp_path / "url").iterdir())


# ---------------------------------------------------------------------------------- full disk


@pytest.fixture
def full_disk() -> Iterator[Path]:
    """A 64 KiB tmpfs (too small for :data:`BODY`), unmounted after the test."""
    with small_tmpfs("64k") as mount:
        yield mount


def test_a_full_disk_fails_a_download_naming_the_cache(server: ArtifactServer, full_disk: Path) -> None:
    with pytest.raises(VolantError) as failure:
        fetch(server.url("/good"), f"sha256:{DIGEST}", full_disk)
    assert f"cannot store it in {full_disk / 'partial'}: No space left on device" in failure.value.message
    assert cache_files(full_disk) == []


def test_a_full_disk_fails_a_local_copy_naming_the_cache(tmp_path: Path, full_disk: Path) -> None:
    source = tmp_path / "rootfs.img"
    source.write_bytes(BODY)
    with pytest.raises(VolantError, match="No space left on device; free space there"):
        fetch(str(source), f"sha256:{DIGEST}", full_disk)
    assert cache_files(full_disk) == []


# ----------------------------------------------------------------------------- through volantd


def test_a_boot_whose_download_is_cut_off_ends_crashed_with_the_reason(
    host_api: RunningDaemon, host_manifest: dict[str, Any], server: ArtifactServer
) -> None:
    host_manifest["name"] = host_manifest["runtime"] = "layered"
    host_manifest["initramfs"] = {"url": server.url("/layer")}
    assert host_api.request("POST", "/api/v1/plugins", host_manifest).status == 201
    assert host_api.request("POST", "/api/v1/vms", {"name": "web", "plugin": "layered"}).status == 201
    host_api.wait_for_status("web", {"running"})
    assert host_api.request("POST", "/api/v1/vms/web/stop").status == 200
    server.cut_layer = True
    reply = host_api.request("POST", "/api/v1/vms/web/start")
    assert reply.status == 422, reply.text
    vm = host_api.request("GET", "/api/v1/vms/web").json()
    assert vm["status"] == "crashed"
    assert "the connection ended in the middle of the body" in vm["status_reason"]
    assert "manifest.initramfs.url" in vm["status_reason"]


def test_partial_files_a_killed_volantd_left_are_removed_at_start(host_api: RunningDaemon) -> None:
    settings = host_api.daemon.settings
    leftovers = [
        settings.download_dir / "sha256" / f"{PARTIAL_PREFIX}abc",
        settings.runtime_dir / "web" / "initramfs.img.partial",
        settings.runtime_dir / "web" / "disks" / "data.raw.partial",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    kept = settings.download_dir / "sha256" / DIGEST
    kept.write_bytes(BODY)
    host_api.restart()
    assert [path for path in leftovers if path.exists()] == []
    assert kept.read_bytes() == BODY


def test_a_boot_that_finds_the_disk_full_ends_crashed_with_the_reason(host_manifest: dict[str, Any]) -> None:
    with small_tmpfs("1m", prefix="vr-") as runtime, host_process_daemon(runtime_dir=runtime) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        assert api.request("POST", "/api/v1/vms", {"name": "web", "plugin": "hello-host"}).status == 201
        api.wait_for_status("web", {"running"})
        assert api.request("POST", "/api/v1/vms/web/stop").status == 200
        fill_disk(runtime)
        reply = api.request("POST", "/api/v1/vms/web/start")
        assert reply.status == 503 and reply.json()["error"]["code"] == "disk_full", reply.body
        vm = api.request("GET", "/api/v1/vms/web").json()
        assert vm["status"] == "crashed" and "No space left on device" in vm["status_reason"], vm
        assert not (runtime / "web" / "initramfs.img.partial").exists()


def test_volantd_gives_a_boot_download_its_deadline(
    host_manifest: dict[str, Any], server: ArtifactServer
) -> None:
    host_manifest["initramfs"] = {"url": server.url("/drip")}
    with host_process_daemon(artifact_deadline=1) as api:  # VOLANT_ARTIFACT_DEADLINE=1
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        reply = api.request("POST", "/api/v1/vms", {"name": "web", "plugin": "hello-host"})
        assert reply.status == 201, reply.text  # the download happens after the answer
        vm = api.wait_for_status("web", {"crashed"}, timeout=30)
        assert "took longer than VOLANT_ARTIFACT_DEADLINE allows" in vm["status_reason"]
