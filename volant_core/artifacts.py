"""Boot media fetched by URL, verified by SHA-256 and kept in a cache keyed by checksum.

The core's own boot sources: local paths and ``file://`` URLs, and ``http(s)://``
downloads. A verified artifact is stored once under ``<cache>/sha256/<digest>`` and
reused by every VM. A download (ADR 0030):

* follows redirects only within http(s), never from ``https`` down to ``http``
  (another host is fine: release URLs redirect to CDNs, and the checksum vouches for
  the content);
* must bring exactly the bytes its ``Content-Length`` announces, or a complete chunked
  body; a short or cut body is an error, never a truncated artifact;
* gives up once it took longer than its deadline in total (``VOLANT_ARTIFACT_DEADLINE``),
  or after :data:`READ_TIMEOUT` seconds without a byte;
* is written to a ``.partial-*`` file that only a complete, verified download replaces
  (:func:`sweep_partials` removes those a killed volantd left).

An artifact without a checksum is cached by URL (``<cache>/url/<sha256 of the URL>.json``
names the stored copy and the server's ``ETag`` / ``Last-Modified``) and revalidated on
every fetch: a ``304 Not Modified`` reuses the copy, anything else downloads it again.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from email.message import Message
from pathlib import Path
from typing import IO, Any

from volant_core.confinement import local_path
from volant_core.errors import ValidationError, VolantError
from volant_core.images import open_regular
from volant_core.metrics.cache_hits import cache_hit

#: Largest artifact a download may bring (bytes).
MAX_DOWNLOAD_BYTES = 16 * 1024**3
#: Longest silence (seconds) from a server before its download is given up.
READ_TIMEOUT = 60.0
#: Total time (seconds) a download may take when the caller gives no deadline.
DEFAULT_DEADLINE = 3600.0
#: Name prefix of a file being written into the cache.
PARTIAL_PREFIX = ".partial-"
_CHUNK = 1024 * 1024
_BLOBS = "sha256"
_URLS = "url"


def expected_digest(checksum: str | None) -> str | None:
    """The lower-case hex SHA-256 named by ``checksum`` (``sha256:<hex>`` or ``<hex>``), or None."""
    if not checksum:
        return None
    algo, sep, digest = checksum.partition(":")
    if not sep:
        algo, digest = "sha256", checksum
    if algo.lower() != "sha256" or len(digest) != 64:
        raise ValidationError(
            f"checksum {checksum!r}: only sha256 is supported, as 'sha256:<64 hex digits>'", field="checksum"
        )
    return digest.lower()


def sweep_partials(cache_dir: Path) -> list[Path]:
    """Remove the ``.partial-*`` files a killed volantd left in the cache; the paths removed."""
    removed = []
    for directory in (cache_dir / _BLOBS, cache_dir / _URLS):
        for partial in directory.glob(PARTIAL_PREFIX + "*"):
            partial.unlink(missing_ok=True)
            removed.append(partial)
    return removed


def _store(chunks: Iterable[bytes], digest: str | None, cache_dir: Path, url: str) -> Path:
    """Copy ``chunks`` into the cache while hashing; refuse them if the digest does not match.

    Nothing but a complete, verified copy stays: the partial file is removed on any failure.
    """
    target_dir = cache_dir / _BLOBS
    target_dir.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=PARTIAL_PREFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise ValidationError(f"{url}: larger than {MAX_DOWNLOAD_BYTES} bytes", field="url")
                hasher.update(chunk)
                _write(out, chunk, target_dir, url)
        actual = hasher.hexdigest()
        if digest and actual != digest:
            raise ValidationError(
                f"{url}: checksum mismatch (expected sha256:{digest}, got sha256:{actual})", field="checksum"
            )
        final = target_dir / actual
        os.replace(tmp_name, final)
        return final
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _write(out: IO[bytes], data: bytes, directory: Path, url: str) -> None:
    """Write ``data`` and flush it: a full disk is an error naming the cache, not a stray OSError."""
    try:
        out.write(data)
        out.flush()
    except OSError as err:
        raise VolantError(
            f"{url}: cannot store it in {directory}: {err.strerror}; free space there "
            "(or move VOLANT_CACHE_DIR)"
        ) from None


def _cached(digest: str | None, cache_dir: Path) -> Path | None:
    if digest is None:
        return None
    path = cache_dir / _BLOBS / digest
    return path if path.exists() else None


def fetch_file(url: str, checksum: str | None, cache_dir: Path) -> Path:
    """A local path or ``file://`` URL; verified and cached when a checksum is given, else used in place."""
    path = local_path(url)
    if path is None or not path.is_absolute():
        raise ValidationError(f"{url}: local artifact paths must be absolute", field="url")
    if not path.is_file():
        raise ValidationError(f"{url}: no such file on the host", field="url")
    digest = expected_digest(checksum)
    if digest is None:
        return path
    if hit := _cached(digest, cache_dir):
        return cache_hit(cache_dir, hit)
    with open_regular(path, field="url") as src:
        return _store(iter(lambda: src.read(_CHUNK), b""), digest, cache_dir, url)


class _SchemeKeepingRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to ``http(s)``, and never from ``https`` to ``http``."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        """The request following the redirect; ValidationError when it changes the scheme."""
        old = urllib.parse.urlparse(req.full_url).scheme
        new = urllib.parse.urlparse(newurl).scheme
        if new not in ("http", "https") or (old, new) == ("https", "http"):
            raise ValidationError(
                f"{req.full_url}: redirected ({code}) to {newurl}, another scheme; Volant follows "
                "redirects within http(s) only and never from https to http: give the final URL",
                field="url",
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SchemeKeepingRedirects)


def fetch_http(url: str, checksum: str | None, cache_dir: Path, *, deadline: float | None = None) -> Path:
    """Download an ``http(s)://`` artifact into the cache and return its path.

    With a checksum, a cached copy is reused and a download must match it. Without one, the copy
    cached for ``url`` is revalidated with the server (see the module). ``deadline`` is the
    :func:`time.monotonic` time by which the download must be complete (default: in
    :data:`DEFAULT_DEADLINE` seconds). ValidationError naming the URL when it cannot be fetched.
    """
    digest = expected_digest(checksum)
    if hit := _cached(digest, cache_dir):
        return cache_hit(cache_dir, hit)
    deadline = time.monotonic() + DEFAULT_DEADLINE if deadline is None else deadline
    record_path = cache_dir / _URLS / f"{hashlib.sha256(url.encode()).hexdigest()}.json"
    record = _url_record(record_path, url, cache_dir) if digest is None else None
    request = urllib.request.Request(url, headers=_validators(record))
    try:
        with _OPENER.open(request, timeout=min(READ_TIMEOUT, _remaining(deadline, url))) as response:
            stored = _store(_body(response, url, deadline), digest, cache_dir, url)
            if digest is None:
                _save_url_record(record_path, url, stored.name, response.headers)
            return stored
    except urllib.error.HTTPError as err:
        if err.code == http.HTTPStatus.NOT_MODIFIED and record is not None:
            return cache_hit(cache_dir, cache_dir / _BLOBS / record["digest"])
        raise ValidationError(f"{url}: download failed: HTTP {err.code} {err.reason}", field="url") from None
    except (OSError, http.client.HTTPException) as err:
        raise ValidationError(f"{url}: download failed: {_describe(err)}", field="url") from None


def _remaining(deadline: float, url: str) -> float:
    """Seconds left before ``deadline``; ValidationError once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise ValidationError(
            f"{url}: the download took longer than VOLANT_ARTIFACT_DEADLINE allows; raise it for "
            "large artifacts or slow servers",
            field="url",
        )
    return left


def _body(response: http.client.HTTPResponse, url: str, deadline: float) -> Iterator[bytes]:
    """The response body in chunks as they arrive; ValidationError when it ends short of its
    ``Content-Length``, announces more than :data:`MAX_DOWNLOAD_BYTES`, or the deadline passes.
    """
    declared = response.headers.get("Content-Length")
    expected = int(declared) if declared is not None and declared.isdigit() else None
    if expected is not None and expected > MAX_DOWNLOAD_BYTES:
        raise ValidationError(f"{url}: larger than {MAX_DOWNLOAD_BYTES} bytes ({expected})", field="url")
    received = 0
    while chunk := response.read1(_CHUNK):
        received += len(chunk)
        yield chunk
        _remaining(deadline, url)
    if expected is not None and received != expected:
        raise ValidationError(
            f"{url}: download failed: the server sent {received} of the {expected} bytes it announced",
            field="url",
        )


def _describe(err: BaseException) -> str:
    """A short reason for a failed download."""
    if isinstance(err, http.client.IncompleteRead):
        return "the connection ended in the middle of the body"
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return str(err) or type(err).__name__


def _url_record(path: Path, url: str, cache_dir: Path) -> dict[str, Any] | None:
    """What the cache remembers of the un-checksummed ``url`` (None when nothing usable)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("url") != url:
        return None
    return record if _cached(str(record.get("digest")), cache_dir) else None


def _validators(record: dict[str, Any] | None) -> dict[str, str]:
    """The conditional request headers that let the server answer 304 for the cached copy."""
    if record is None:
        return {}
    headers = {"If-None-Match": record.get("etag"), "If-Modified-Since": record.get("last_modified")}
    return {name: str(value) for name, value in headers.items() if value}


def _save_url_record(path: Path, url: str, digest: str, headers: Message) -> None:
    """Remember the copy of ``url`` with the server's validators; forget it when the server gives
    none (it is then downloaded on every fetch).
    """
    etag, modified = headers.get("ETag"), headers.get("Last-Modified")
    if etag is None and modified is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"url": url, "digest": digest, "etag": etag, "last_modified": modified}
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=PARTIAL_PREFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            _write(out, json.dumps(record).encode(), path.parent, url)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
