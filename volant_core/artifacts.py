"""The core's own boot sources: they open artifacts, :mod:`volant_core.artifact_cache` verifies them.

* ``file``: a local path or ``file://`` URL (read as the artifact policy resolved it), opened
  without following a link in its last component, only when it is a regular file;
* ``http``/``https``: a download (ADR 0030, ADR 0036) that follows redirects only within
  http(s), never from ``https`` down to ``http`` (another host is fine: release URLs redirect to
  CDNs, and the checksum vouches for the content); resumes with a ``Range`` request (``If-Range``
  names the copy being resumed, so a changed file starts over); revalidates a cached copy with
  ``If-None-Match`` / ``If-Modified-Since``; gives up after :data:`READ_TIMEOUT` seconds without a
  byte (the cache enforces the total deadline);
* ``package``: ``package://<distribution>/<path>``, a file shipped inside an installed Python
  distribution (one its ``RECORD`` lists), for runtimes whose images come with ``pip install``.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import io
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Any

from volant_core.confinement import local_path
from volant_core.descriptors import ArtifactStream
from volant_core.errors import ValidationError
from volant_core.images import open_regular

#: Longest silence (seconds) from a server before its download is given up.
READ_TIMEOUT = 60.0
#: The URL scheme of artifacts shipped in Python distributions.
PACKAGE_SCHEME = "package"
_CHUNK = 1024 * 1024


def remaining(deadline: float, url: str) -> float:
    """Seconds left before ``deadline``; ValidationError once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise ValidationError(
            f"{url}: the download took longer than VOLANT_ARTIFACT_DEADLINE allows; raise it for "
            "large artifacts or slow servers",
            field="url",
        )
    return left


# ---------------------------------------------------------------------------------- local files


def open_file(url: str, *, offset: int, deadline: float, validators: Mapping[str, str]) -> ArtifactStream:
    """A local path or ``file://`` URL, from ``offset`` on; usable in place when unchecksummed."""
    path = local_path(url)
    if path is None or not path.is_absolute():
        raise ValidationError(f"{url}: local artifact paths must be absolute", field="url")
    if not path.exists():
        raise ValidationError(f"{url}: no such file on the host", field="url")
    return _regular_file_stream(path, offset, field="url", in_place=path)


def _regular_file_stream(path: Path, offset: int, *, field: str, in_place: Path | None) -> ArtifactStream:
    """The stream of the regular file ``path`` from ``offset`` (0 when past its end)."""
    body = open_regular(path, field=field)
    size = os.fstat(body.fileno()).st_size
    start = offset if 0 < offset <= size else 0
    body.seek(start)
    return ArtifactStream(body, size=size, offset=start, in_place=in_place)


# ------------------------------------------------------------------------------ Python packages


def open_package(url: str, *, offset: int, deadline: float, validators: Mapping[str, str]) -> ArtifactStream:
    """``package://<distribution>/<path>``: a file the installed distribution's ``RECORD`` lists.

    Refused when the path climbs out (``..``), the distribution is not installed, it does not list
    the file, or the file resolves (links followed) outside the distribution's install location.
    """
    parts = urllib.parse.urlparse(url)
    name, relative = parts.netloc, PurePosixPath(urllib.parse.unquote(parts.path).lstrip("/"))
    if not name or not relative.parts or ".." in relative.parts or parts.query or parts.fragment:
        raise ValidationError(
            f"{url}: write package://<distribution>/<path inside it>, without '..', query or fragment",
            field="url",
        )
    try:
        distribution = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise ValidationError(
            f"{url}: no Python distribution {name!r} is installed; pip install it next to volantd",
            field="url",
        ) from None
    listed = {PurePosixPath(str(file)) for file in distribution.files or ()}
    if relative not in listed:
        raise ValidationError(f"{url}: distribution {name!r} ships no file {str(relative)!r}", field="url")
    root = Path(str(distribution.locate_file(""))).resolve()
    path = Path(str(distribution.locate_file(str(relative)))).resolve()
    if not path.is_relative_to(root):
        raise ValidationError(f"{url}: {path} lies outside distribution {name!r}", field="url")
    return _regular_file_stream(path, offset, field="url", in_place=None)


# ---------------------------------------------------------------------------------------- HTTP


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


class _Body(io.RawIOBase):
    """A response body whose cut-off (``IncompleteRead`` and other protocol errors) reads as a
    ``ConnectionError`` saying so, like any other broken connection."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self._response = response

    def readable(self) -> bool:
        """Always: it is a body to read."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` with what arrived (as soon as anything did)."""
        try:
            data = self._response.read1(len(buffer))
        except http.client.HTTPException as err:
            raise ConnectionError(describe(err)) from None
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Close the response (and its connection)."""
        self._response.close()
        super().close()


def open_http(url: str, *, offset: int, deadline: float, validators: Mapping[str, str]) -> ArtifactStream:
    """Open an ``http(s)://`` download (see the module): from ``offset`` with ``Range`` when the
    server honours it, ``not_modified`` when ``validators`` still name its current copy.
    ValidationError naming the URL when it cannot be fetched.
    """
    headers = _conditions(offset, validators)
    request = urllib.request.Request(url, headers=headers)
    try:
        response = _OPENER.open(request, timeout=min(READ_TIMEOUT, remaining(deadline, url)))
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == http.HTTPStatus.NOT_MODIFIED and offset == 0 and validators:
            return ArtifactStream(io.BytesIO(), not_modified=True, validators=validators)
        if err.code == http.HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE and offset:
            return open_http(url, offset=0, deadline=deadline, validators={})  # the partial is off
        raise ValidationError(f"{url}: download failed: HTTP {err.code} {err.reason}", field="url") from None
    except (OSError, http.client.HTTPException) as err:
        raise ValidationError(f"{url}: download failed: {describe(err)}", field="url") from None
    start, size = _extent(response, offset)
    found = {"etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified")}
    return ArtifactStream(
        io.BufferedReader(_Body(response), _CHUNK),
        size=size,
        offset=start,
        validators={k: v for k, v in found.items() if v},
    )


def _conditions(offset: int, validators: Mapping[str, str]) -> dict[str, str]:
    """The request headers: a ``Range`` (with ``If-Range``) to resume, or the conditional headers
    that let the server answer 304 for the copy ``validators`` name.
    """
    etag, modified = validators.get("etag"), validators.get("last_modified")
    if offset:
        headers = {"Range": f"bytes={offset}-"}
        if etag or modified:
            headers["If-Range"] = str(etag or modified)
        return headers
    found = {"If-None-Match": etag, "If-Modified-Since": modified}
    return {name: value for name, value in found.items() if value}


def _extent(response: http.client.HTTPResponse, offset: int) -> tuple[int, int | None]:
    """Where the body starts in the artifact and the artifact's whole size (None when unknown)."""
    declared = response.headers.get("Content-Length")
    length = int(declared) if declared is not None and declared.isdigit() else None
    if response.status == http.HTTPStatus.PARTIAL_CONTENT:
        unit, _, extent = (response.headers.get("Content-Range") or "").partition(" ")
        span, _, total = extent.partition("/")
        first = span.partition("-")[0]
        if unit == "bytes" and first.isdigit() and int(first) == offset:
            whole = int(total) if total.isdigit() else None if length is None else offset + length
            return offset, whole
        response.close()
        raise ValidationError(
            f"{response.url}: download failed: asked for bytes from {offset}, the server sent "
            f"{response.headers.get('Content-Range')!r}",
            field="url",
        )
    return 0, length


def describe(err: BaseException) -> str:
    """A short reason for a failed download."""
    if isinstance(err, http.client.IncompleteRead):
        return "the connection ended in the middle of the body"
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return str(err) or type(err).__name__
