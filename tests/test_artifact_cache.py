"""The core's artifact cache (issue 14, ADR 0036) against a real HTTP server on loopback.

The server counts what it is asked, honours ``Range``/``If-Range``, and misbehaves on demand: a
body cut in the middle, an answer held back until the test lets it go, a body sent in slow pieces.
Checks: checksums (sha256 and sha512) are verified and a mismatch is never cached; a corrupted
cache entry is fetched again, never used; a cut download resumes with a ``Range`` request and the
result is verified in full; concurrent fetches share one download; progress is reported; the
startup sweep keeps what can be resumed; ``package://`` reads files shipped in an installed
distribution and nothing outside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import importlib.metadata
import json
import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core import artifacts
from volant_core.artifact_cache import PARTIAL_PREFIX, ArtifactCache
from volant_core.errors import ValidationError
from volant_core.guest import file_layer
from volant_core.testing.cli import run_volar
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import host_process_daemon

#: The artifact the server serves at ``/artifact``.
BODY = os.urandom(400_000)
SHA256 = f"sha256:{hashlib.sha256(BODY).hexdigest()}"
SHA512 = f"sha512:{hashlib.sha512(BODY).hexdigest()}"
#: Where the server cuts a body it was told to cut.
CUT_AT = 150_000
#: The initramfs layer the VMs of the volantd tests add.
LAYER = file_layer({"/etc/artifact-test": os.urandom(200_000)})


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; see :class:`Server` for the misbehaviours."""

    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on what the client sees."""

    def do_GET(self) -> None:
        """Answer from ``server.files``, honouring ``Range`` unless ``If-Range`` names another copy."""
        path = urllib.parse.urlparse(self.path).path
        server = self.server
        requested_range = self.headers.get("Range")
        with server.lock:
            server.requests.append((path, requested_range))
            failing = server.failing
        if path not in server.files or failing:
            self._head(503 if failing else 404, {"Content-Length": "0"})
            return
        body, etag = server.files[path], server.etag
        start = 0
        if requested_range and self.headers.get("If-Range", etag) == etag:
            start = int(requested_range.removeprefix("bytes=").rstrip("-"))
        headers = {"Content-Length": str(len(body) - start), "ETag": etag}
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        self._head(206 if start else 200, headers)
        self.wfile.flush()
        server.gate.wait()
        with server.lock:
            cut = server.cut.pop(path, None) if not start else None
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            if server.fail_after_cut:
                server.failing = True
            return
        with contextlib.suppress(ConnectionError):
            self._send_paced(body[start:])

    def _send_paced(self, body: bytes) -> None:
        """Send ``body`` at once, or in ``server.pieces`` pieces ``server.pace`` seconds apart."""
        if not self.server.pieces:
            self.wfile.write(body)
            return
        size = -(-len(body) // self.server.pieces)
        for offset in range(0, len(body), size):
            if self.server.stopping.wait(self.server.pace):
                return
            self.wfile.write(body[offset : offset + size])
            self.wfile.flush()

    def _head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()


class Server(http.server.ThreadingHTTPServer):
    """A real HTTP server on 127.0.0.1. ``cut[path]``: the next full answer of ``path`` stops after
    that many bytes (then every answer is a 503 while ``fail_after_cut``); ``gate``: bodies wait
    (after the headers) until it is set; ``pieces``/``pace``: bodies go out in that many pieces,
    that far apart.
    """

    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, bytes] = {"/artifact": BODY, "/layer": LAYER}
        self.etag = '"v1"'
        self.requests: list[tuple[str, str | None]] = []
        self.cut: dict[str, int] = {}
        self.fail_after_cut = False
        self.failing = False
        self.gate = threading.Event()
        self.gate.set()
        self.pieces = 0
        self.pace = 0.0
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        """The URL of ``path`` on this server."""
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def asked(self, path: str) -> list[str | None]:
        """The ``Range`` header (None: none) of every request for ``path``, in order."""
        with self.lock:
            return [requested for asked, requested in self.requests if asked == path]


@pytest.fixture
def server() -> Iterator[Server]:
    """A :class:`Server` serving in a thread; its held and paced answers end at teardown."""
    running = Server()
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.stopping.set()
        running.gate.set()
        running.shutdown()
        running.server_close()
        thread.join()


def fetch(cache: ArtifactCache, url: str, checksum: str | None, **options: Any) -> Path:
    """Fetch ``url`` through the core's HTTP source, a minute's deadline."""
    return cache.fetch(url, checksum, artifacts.open_http, deadline=time.monotonic() + 60, **options)


def cut_download(server: Server, directory: Path) -> ArtifactCache:
    """A cache in ``directory`` holding the partial download of ``/artifact``: the server cut it at
    ``CUT_AT`` bytes and then failed the retry (the server keeps failing until told otherwise).
    """
    server.cut["/artifact"], server.fail_after_cut = CUT_AT, True
    cache = ArtifactCache(directory)
    with pytest.raises(ValidationError, match="HTTP 503"):
        fetch(cache, server.url("/artifact"), SHA256)
    return cache


def files_under(directory: Path) -> list[str]:
    """Every file below ``directory``, relative to it."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def wait_until(condition: Any, what: str, timeout: float = 30) -> None:
    """Poll ``condition()`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# ------------------------------------------------------------------------------------ checksums


def test_a_sha512_checksum_is_verified_and_the_artifact_stored_under_it(
    server: Server, tmp_path: Path
) -> None:
    path = fetch(ArtifactCache(tmp_path), server.url("/artifact"), SHA512)
    assert path == tmp_path / "sha512" / SHA512.removeprefix("sha512:")
    assert path.read_bytes() == BODY


def test_a_wrong_checksum_is_refused_nothing_kept_and_the_next_fetch_asks_again(
    server: Server, tmp_path: Path
) -> None:
    cache = ArtifactCache(tmp_path)
    server.files["/artifact"] = b"not what the manifest promised"
    with pytest.raises(ValidationError) as refused:
        fetch(cache, server.url("/artifact"), SHA512)
    actual = hashlib.sha512(b"not what the manifest promised").hexdigest()
    assert f"checksum mismatch (expected {SHA512}, got sha512:{actual})" in refused.value.message
    assert files_under(tmp_path) == []
    server.files["/artifact"] = BODY
    assert fetch(cache, server.url("/artifact"), SHA512).read_bytes() == BODY
    assert len(server.asked("/artifact")) == 2


def test_a_corrupted_cache_entry_is_fetched_again_never_used(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = ArtifactCache(tmp_path)
    path = fetch(cache, server.url("/artifact"), SHA256)
    assert fetch(cache, server.url("/artifact"), SHA256) == path
    assert len(server.asked("/artifact")) == 1  # an intact hit is not fetched again
    before = path.stat()
    with open(path, "r+b") as blob:  # one byte flipped, size and modification time put back
        blob.seek(1000)
        blob.write(bytes([BODY[1000] ^ 0xFF]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with caplog.at_level(logging.WARNING, logger="volant_core.artifact_cache"):
        again = fetch(cache, server.url("/artifact"), SHA256)
    assert again == path and again.read_bytes() == BODY
    assert len(server.asked("/artifact")) == 2
    assert f"the cached copy {path} is corrupt (expected {SHA256}" in caplog.text


# --------------------------------------------------------------------------------------- resume


def test_a_cut_download_resumes_with_a_range_request_and_is_verified(server: Server, tmp_path: Path) -> None:
    server.cut["/artifact"] = CUT_AT
    path = fetch(ArtifactCache(tmp_path), server.url("/artifact"), SHA256)
    assert path.read_bytes() == BODY
    assert server.asked("/artifact") == [None, f"bytes={CUT_AT}-"]
    assert files_under(tmp_path / "partial") == []


def test_a_download_cut_in_one_fetch_is_resumed_by_the_next(server: Server, tmp_path: Path) -> None:
    cache = cut_download(server, tmp_path)
    assert [e.size for e in cache.entries() if e.kind == "partial"] == [CUT_AT]
    server.failing = False
    assert fetch(ArtifactCache(tmp_path), server.url("/artifact"), SHA256).read_bytes() == BODY
    assert server.asked("/artifact")[-1] == f"bytes={CUT_AT}-"


def test_a_resumed_download_that_does_not_verify_is_downloaded_again_in_full(
    server: Server, tmp_path: Path
) -> None:
    cache = cut_download(server, tmp_path)
    (partial,) = [e.path for e in cache.entries() if e.kind == "partial"]
    with open(partial, "r+b") as damaged:
        damaged.write(b"garbage")
    server.failing = False
    assert fetch(cache, server.url("/artifact"), SHA256).read_bytes() == BODY
    assert server.asked("/artifact")[-2:] == [f"bytes={CUT_AT}-", None]


def test_a_partial_of_a_file_changed_since_starts_over(server: Server, tmp_path: Path) -> None:
    cache = cut_download(server, tmp_path)
    server.failing, server.etag = False, '"v2"'  # If-Range names v1: the server sends all of v2
    assert fetch(cache, server.url("/artifact"), SHA256).read_bytes() == BODY
    assert server.asked("/artifact")[-1] == f"bytes={CUT_AT}-"


def test_the_startup_sweep_keeps_resumable_partials_and_removes_the_rest(
    server: Server, tmp_path: Path
) -> None:
    cache = cut_download(server, tmp_path)
    (kept,) = [e.path for e in cache.entries() if e.kind == "partial"]
    orphan = tmp_path / "partial" / ("0" * 64)  # no record: nothing says what it is
    orphan.write_bytes(b"half")
    writing = tmp_path / "sha256" / f"{PARTIAL_PREFIX}abc"
    writing.parent.mkdir(parents=True, exist_ok=True)
    writing.write_bytes(b"half")
    assert sorted(cache.sweep()) == sorted([orphan, writing])
    assert kept.stat().st_size == CUT_AT


# ---------------------------------------------------------------------- sharing and progress


def test_fetches_of_one_artifact_at_once_share_one_download_and_its_progress(
    server: Server, tmp_path: Path
) -> None:
    cache = ArtifactCache(tmp_path)
    server.gate.clear()
    reports: dict[str, list[tuple[int, int | None]]] = {"first": [], "second": []}
    results: dict[str, Path] = {}

    def fetcher(who: str) -> None:
        results[who] = fetch(
            cache, server.url("/artifact"), SHA256, progress=lambda d, t: reports[who].append((d, t))
        )

    threads = [threading.Thread(target=fetcher, args=(who,)) for who in reports]
    threads[0].start()
    wait_until(lambda: reports["first"], "the first fetch to start downloading")
    threads[1].start()
    wait_until(lambda: reports["second"], "the second fetch to join the download")
    server.gate.set()
    for thread in threads:
        thread.join()
    assert results["first"] == results["second"] and results["first"].read_bytes() == BODY
    assert len(server.asked("/artifact")) == 1
    assert reports["second"][0] == (0, len(BODY))  # told at once how far the shared download got
    assert reports["second"][-1] == reports["first"][-1] == (len(BODY), len(BODY))


def test_a_slow_download_reports_growing_progress(server: Server, tmp_path: Path) -> None:
    server.pieces, server.pace = 5, 0.6
    reports: list[tuple[int, int | None]] = []
    fetch(
        ArtifactCache(tmp_path), server.url("/artifact"), SHA256, progress=lambda d, t: reports.append((d, t))
    )
    done = [d for d, _ in reports]
    assert done == sorted(done) and len(set(done)) >= 4, reports
    assert {t for _, t in reports} == {len(BODY)} and done[-1] == len(BODY)


# ---------------------------------------------------------------------------- package:// source


def _shipped_file() -> tuple[str, Path]:
    """A file the installed ``click`` distribution lists: its package:// URL and path."""
    distribution = importlib.metadata.distribution("click")
    shipped = next(f for f in distribution.files or () if str(f).endswith("click/__init__.py"))
    return f"package://click/{shipped}", Path(str(distribution.locate_file(shipped)))


def test_a_package_url_reads_a_file_its_distribution_ships(tmp_path: Path) -> None:
    url, path = _shipped_file()
    content = path.read_bytes()
    checksum = f"sha256:{hashlib.sha256(content).hexdigest()}"
    cache = ArtifactCache(tmp_path)
    fetched = cache.fetch(url, checksum, artifacts.open_package, deadline=time.monotonic() + 60)
    assert fetched.read_bytes() == content and fetched.is_relative_to(tmp_path)
    copied = cache.fetch(url, None, artifacts.open_package, deadline=time.monotonic() + 60)
    assert copied.is_relative_to(tmp_path)  # never used where it lies: outside the artifact directories


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("package://click/../../../../etc/passwd", "without '..'"),
        ("package://click/click/no-such-file.img", "ships no file 'click/no-such-file.img'"),
        ("package://no-such-distribution-x/a.img", "no Python distribution 'no-such-distribution-x'"),
    ],
)
def test_a_package_url_outside_what_its_distribution_ships_is_refused(
    tmp_path: Path, url: str, reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason.replace(".", r"\.")):
        ArtifactCache(tmp_path).fetch(url, None, artifacts.open_package, deadline=time.monotonic() + 60)
    assert files_under(tmp_path) == []


# ------------------------------------------------------------------------------- through volantd


LAYER_CHECKSUM = f"sha256:{hashlib.sha256(LAYER).hexdigest()}"


def download_events(api: RunningDaemon, name: str) -> list[dict[str, Any]]:
    """The ``data`` of every ``VM_DOWNLOAD_PROGRESS`` event of VM ``name``, oldest first."""
    return [
        e.payload["data"]
        for e in api.daemon.store.events.since(0)
        if e.type == "VM_DOWNLOAD_PROGRESS" and e.vm_name == name
    ]


@pytest.fixture
def layered(host_manifest: dict[str, Any], server: Server) -> Iterator[RunningDaemon]:
    """A host-process volantd with runtime ``hello-host`` adding :data:`LAYER` from ``server``."""
    host_manifest["initramfs"] = {"url": server.url("/layer"), "checksum": LAYER_CHECKSUM}
    with host_process_daemon() as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        yield api


def test_two_vms_created_at_once_download_their_artifact_once(layered: RunningDaemon, server: Server) -> None:
    server.gate.clear()
    for name in ("one", "two"):
        reply = layered.request("POST", "/api/v1/vms", {"name": name, "plugin": "hello-host"})
        assert reply.status == 201, reply.body
        assert reply.json()["status"] in ("pending", "starting")  # not held open for the download
    for name in ("one", "two"):  # both boots are in the one download, each with its progress
        wait_until(lambda name=name: download_events(layered, name), f"vm {name} to wait for the layer")
    server.gate.set()
    for name in ("one", "two"):
        layered.wait_for_status(name, {"running"}, timeout=60)
        last = download_events(layered, name)[-1]
        assert last == {
            "field": "manifest.initramfs.url",
            "url": server.url("/layer"),
            "done": len(LAYER),
            "total": len(LAYER),
        }
    assert server.asked("/layer") == [None]


def test_a_corrupted_cached_layer_is_fetched_again_before_a_boot(
    layered: RunningDaemon, server: Server
) -> None:
    assert layered.request("POST", "/api/v1/vms", {"name": "one", "plugin": "hello-host"}).status == 201
    layered.wait_for_status("one", {"running"}, timeout=60)
    blob = layered.daemon.settings.download_dir / "sha256" / LAYER_CHECKSUM.removeprefix("sha256:")
    blob.write_bytes(b"corrupted" + blob.read_bytes()[9:])
    assert layered.request("POST", "/api/v1/vms/one/stop").status == 200
    assert layered.request("POST", "/api/v1/vms/one/start").status == 200
    layered.wait_for_status("one", {"running"}, timeout=60)
    assert server.asked("/layer") == [None, None] and blob.read_bytes() == LAYER
    composed = (layered.daemon.settings.runtime_dir / "one" / "initramfs.img").read_bytes()
    assert LAYER in composed and b"corrupted" not in composed


def test_volar_create_draws_the_download_as_a_bar_with_growing_byte_counts(
    layered: RunningDaemon, server: Server
) -> None:
    server.pieces, server.pace = 6, 0.6
    shown = run_volar(
        layered.url, "vms", "create", "slow", "--plugin", "hello-host", "-o", "json", terminal=True
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "running"
    counts = re.findall(
        r"vm slow: \w+ \[[#-]{20}\] ([\d.]+ \w+) of 195\.\d KiB manifest\.initramfs\.url", shown.stderr
    )
    assert len(set(counts)) >= 3, shown.stderr  # the bar moved as the bytes came
    piped = run_volar(layered.url, "vms", "create", "quiet", "--plugin", "hello-host", "-o", "json")
    assert piped.returncode == 0 and piped.stderr == ""


def test_cache_ls_shows_who_uses_what_and_prune_keeps_what_a_vm_uses(
    layered: RunningDaemon, server: Server
) -> None:
    other = file_layer({"/etc/other": b"other\n"})
    server.files["/other"] = other
    other_checksum = f"sha256:{hashlib.sha256(other).hexdigest()}"
    for name, config in (
        ("one", {}),
        ("two", {"initramfs": {"url": server.url("/other"), "checksum": other_checksum}}),
    ):
        reply = layered.request(
            "POST", "/api/v1/vms", {"name": name, "plugin": "hello-host", "config": config}
        )
        assert reply.status == 201, reply.body
        layered.wait_for_status(name, {"running"}, timeout=60)
    listed = json.loads(run_volar(layered.url, "image", "cache", "ls", "-o", "json").stdout)
    assert {e["digest"]: e["used_by"] for e in listed["entries"]} == {
        LAYER_CHECKSUM: ["one"],
        other_checksum: ["two"],
    }
    assert listed["total_bytes"] == len(LAYER) + len(other)
    assert layered.request("DELETE", "/api/v1/vms/two").status in (200, 204)

    table = run_volar(layered.url, "image", "cache", "ls")
    assert re.search(rf"^artifact +{LAYER_CHECKSUM} +195\.\d KiB +one$", table.stdout, re.M), table.stdout
    pruned = run_volar(layered.url, "image", "cache", "prune")
    assert pruned.returncode == 0 and pruned.stdout.splitlines() == [
        f"removed artifact {other_checksum} ({len(other)} B)",
        f"freed: {len(other)} B",
    ]
    cache = layered.daemon.settings.download_dir
    assert (cache / "sha256" / LAYER_CHECKSUM.removeprefix("sha256:")).read_bytes() == LAYER
    assert not (cache / "sha256" / other_checksum.removeprefix("sha256:")).exists()

    assert layered.request("DELETE", "/api/v1/vms/one").status in (200, 204)
    reply = layered.request("POST", "/api/v1/images/cache/prune")
    assert [e["digest"] for e in reply.json()["removed"]] == [LAYER_CHECKSUM]
    assert layered.request("GET", "/api/v1/images/cache").json() == {"entries": [], "total_bytes": 0}


def test_prune_spares_a_download_under_way_and_removes_a_partial_left_behind(
    server: Server, tmp_path: Path
) -> None:
    cache = ArtifactCache(tmp_path)
    server.gate.clear()
    reports: list[tuple[int, int | None]] = []
    fetching = threading.Thread(
        target=fetch,
        args=(cache, server.url("/artifact"), SHA256),
        kwargs={"progress": lambda *r: reports.append(r)},
    )
    fetching.start()
    wait_until(lambda: reports, "the download to start")
    assert cache.prune(keep=set()) == []  # its partial is being written
    server.gate.set()
    fetching.join()
    assert [e.digest for e in cache.entries()] == [SHA256]

    server.cut["/other"], server.files["/other"], server.fail_after_cut = 1000, BODY[::-1], True
    with pytest.raises(ValidationError):
        fetch(cache, server.url("/other"), f"sha256:{hashlib.sha256(BODY[::-1]).hexdigest()}")
    removed = cache.prune(keep={tmp_path / "sha256" / SHA256.removeprefix("sha256:")})
    assert [(e.kind, e.size, e.url) for e in removed] == [("partial", 1000, server.url("/other"))]
    assert files_under(tmp_path / "partial") == []
