"""The core's artifact cache: what a boot source opens is verified here, stored by content and shared.

Boot sources only open streams (:class:`~volant_core.descriptors.ArtifactStream`); this module
decides trust and caching for all of them (ADR 0036). Under the cache directory:

* ``sha256/<hex>`` and ``sha512/<hex>`` hold verified artifacts, named by their digest in the
  algorithm their checksum was written in. ``<hex>.verified`` next to each records the size,
  modification and change times and inode the file had when it was last hashed: a hit whose file
  still matches is used as is, any other hit is hashed again, and one that no longer matches its
  name is removed (with a warning naming it) and fetched again. A corrupted copy is never booted.
* ``partial/<key>`` (``<key>.json`` says which URL and checksum) is a checksummed download in
  progress or cut off, keyed by both. A cut download is resumed at once (up to
  :data:`RESUME_ATTEMPTS` tries while each brings bytes), and the next fetch resumes what is left;
  the whole file is verified at the end, and a resumed file that fails is downloaded once more
  from the start. :meth:`ArtifactCache.sweep` keeps partials whose record is intact.
* ``url/<sha256 of the URL>.json`` names the copy of an artifact given without a checksum and the
  validators its source gave (ADR 0030); each fetch asks the source whether it is still current.
* ``.partial-*`` files are being written and cannot be resumed; the sweep removes them.

Several fetches of one artifact at a time share one download (per artifact key, the first one
fetches and the others wait, then find the verified copy) and each gets its progress reports.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import string
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from volant_core.artifacts import describe, remaining
from volant_core.descriptors import ArtifactStream, OpenArtifact
from volant_core.errors import ValidationError, VolantError
from volant_core.manifest import CHECKSUM_ALGORITHMS, CHECKSUM_FORMS, normal_checksum
from volant_core.metrics.cache_hits import cache_hit

log = logging.getLogger(__name__)

#: Largest artifact a fetch may bring (bytes).
MAX_DOWNLOAD_BYTES = 16 * 1024**3
#: How many times one fetch reads a cut download, each try resuming where the last one ended.
RESUME_ATTEMPTS = 3
#: Least time (seconds) between two progress reports of one download (the last one always comes).
PROGRESS_INTERVAL = 0.5
#: Name prefix of a file being written into the cache that cannot be resumed.
PARTIAL_PREFIX = ".partial-"
#: Suffix of the record of a verified artifact's file state.
STAMP_SUFFIX = ".verified"
_PARTIALS = "partial"
_URLS = "url"
_CHUNK = 1024 * 1024

#: ``progress(done, total)``: bytes of an artifact fetched so far and its size (None: unknown).
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Digest:
    """A checksum: its algorithm (a key of :data:`~volant_core.manifest.CHECKSUM_ALGORITHMS`) and
    lower-case hex digest."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_checksum(checksum: str | None) -> Digest | None:
    """The digest ``checksum`` names (as a manifest may write it, :func:`normal_checksum`), None
    for none; ValidationError for anything else.
    """
    if not checksum:
        return None
    normal = normal_checksum(checksum)
    if normal is None:
        raise ValidationError(f"checksum {checksum!r}: write {CHECKSUM_FORMS}", field="checksum")
    algorithm, _, digits = normal.partition(":")
    return Digest(algorithm, digits)


@dataclass(frozen=True)
class CacheEntry:
    """One file of the cache: a verified ``artifact`` or a resumable ``partial`` download."""

    kind: Literal["artifact", "partial"]
    digest: str
    path: Path
    size: int
    modified: float
    url: str | None = None


@dataclass
class _Flight:
    """The fetches of one artifact under way: the lock the first holds while it fetches, and the
    progress listeners of all of them."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    listeners: list[Progress] = field(default_factory=list)
    users: int = 0
    last_report: float = float("-inf")
    latest: tuple[int, int | None] | None = None

    def join(self, progress: Progress | None) -> None:
        """Count one more fetch; ``progress`` hears of the download from now on, and at once of how
        far it got when one is under way.
        """
        self.users += 1
        if progress is not None:
            self.listeners.append(progress)
            if self.latest is not None:
                progress(*self.latest)

    def report(self, done: int, total: int | None) -> None:
        """Tell every listener, at most every :data:`PROGRESS_INTERVAL` seconds and once complete."""
        self.latest = (done, total)
        now = time.monotonic()
        if now - self.last_report < PROGRESS_INTERVAL and done != total:
            return
        self.last_report = now
        for listener in list(self.listeners):
            listener(done, total)


class _Cut(Exception):
    """A stream ended before the whole artifact came; another try may resume it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Partial:
    """A file being written into the cache, hashed as it grows (its existing bytes first)."""

    def __init__(
        self,
        path: Path,
        algorithm: str,
        *,
        validators: dict[str, str] | None = None,
        identity: dict[str, str] | None = None,
    ) -> None:
        """Open ``path`` for appending. A resumable partial has an ``identity`` (its URL and
        checksum), kept with its ``validators`` in ``<path>.json``.
        """
        self.path = path
        self.record = path.with_name(path.name + ".json")
        self.validators = validators or {}
        self._identity = identity
        self._algorithm = algorithm
        self._hasher = hashlib.new(algorithm)
        self._out: IO[bytes] = open(path, "ab")
        self.size = 0
        with open(path, "rb") as existing:
            while chunk := existing.read(_CHUNK):
                self._hasher.update(chunk)
                self.size += len(chunk)
        self.resumed_from = self.size

    def restart(self) -> None:
        """Drop what was written (the source starts over)."""
        self._out.truncate(0)
        self._hasher = hashlib.new(self._algorithm)
        self.size = 0

    def append(self, chunk: bytes, url: str) -> None:
        """Write and hash ``chunk``; a full disk is an error naming the cache, not a stray OSError."""
        if self.size + len(chunk) > MAX_DOWNLOAD_BYTES:
            raise ValidationError(f"{url}: larger than {MAX_DOWNLOAD_BYTES} bytes", field="url")
        _write(self._out, chunk, self.path.parent, url)
        self._hasher.update(chunk)
        self.size += len(chunk)

    def note_validators(self, validators: dict[str, str], url: str) -> None:
        """Remember what the source calls the copy being written (in the record when resumable)."""
        self.validators = validators
        if self._identity is not None:
            _write_json(self.record, {**self._identity, "validators": validators}, url)

    def hexdigest(self) -> str:
        """The digest of what was written."""
        return self._hasher.hexdigest()

    def close(self) -> None:
        """Close the file (it stays)."""
        self._out.close()

    def discard(self) -> None:
        """Close and remove the file and its record."""
        self.close()
        self.path.unlink(missing_ok=True)
        self.record.unlink(missing_ok=True)

    def keep_for_resuming(self) -> None:
        """Close the file, kept for a later fetch to resume when it is resumable and holds bytes."""
        if self._identity is None or self.size == 0:
            self.discard()
        else:
            self.close()


class ArtifactCache:
    """The verified artifacts under ``directory`` (see the module) and the fetches filling it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._guard = threading.Lock()
        self._flights: dict[str, _Flight] = {}

    # ------------------------------------------------------------------------------ fetching

    def fetch(
        self,
        url: str,
        checksum: str | None,
        source: OpenArtifact,
        *,
        deadline: float,
        progress: Progress | None = None,
    ) -> Path:
        """The local path of ``url``'s artifact, verified against ``checksum`` when one is given,
        opened through ``source`` unless the cache holds it (``deadline``: the
        :func:`time.monotonic` time the fetch must end by). ValidationError naming the URL when
        it cannot be fetched or does not match.
        """
        digest = parse_checksum(checksum)
        with self._flight(str(digest) if digest else f"url:{url}", progress) as flight:
            if digest is not None:
                return self._fetch_verified(url, digest, source, deadline, flight.report)
            return self._fetch_unchecksummed(url, source, deadline, flight.report)

    @contextlib.contextmanager
    def _flight(self, key: str, progress: Progress | None) -> Iterator[_Flight]:
        """Join the fetches of ``key`` and hold its lock: the first one fetches, the others wait."""
        with self._guard:
            flight = self._flights.setdefault(key, _Flight())
            flight.join(progress)
        try:
            with flight.lock:
                yield flight
        finally:
            with self._guard:
                if progress is not None:
                    flight.listeners.remove(progress)
                flight.users -= 1
                if flight.users == 0:
                    del self._flights[key]

    def _fetch_verified(
        self, url: str, digest: Digest, source: OpenArtifact, deadline: float, report: Progress
    ) -> Path:
        if hit := self._hit(digest, url):
            return cache_hit(self.directory, hit)
        partial = self._resumable(url, digest)
        try:
            self._receive(url, source, partial, deadline, report)
            if partial.hexdigest() != digest.hex and partial.resumed_from:
                log.warning("%s: the resumed download does not match %s; downloading it again", url, digest)
                partial.restart()
                self._receive(url, source, partial, deadline, report)
            actual = partial.hexdigest()
            if actual != digest.hex:
                partial.discard()
                raise ValidationError(
                    f"{url}: checksum mismatch (expected {digest}, got {digest.algorithm}:{actual}); "
                    "the download was discarded",
                    field="checksum",
                )
            return self._keep(partial, digest)
        except ValidationError:
            partial.keep_for_resuming()  # a mismatch discarded it above
            raise
        except BaseException:
            partial.discard()
            raise

    def _fetch_unchecksummed(self, url: str, source: OpenArtifact, deadline: float, report: Progress) -> Path:
        record_path = self._url_record_path(url)
        record = self._url_record(record_path, url)
        validators = record["validators"] if record else {}
        stream = source(url, offset=0, deadline=deadline, validators=validators)
        if stream.in_place is not None or stream.not_modified:
            stream.body.close()
            if stream.in_place is not None:
                return stream.in_place
            if record is None:
                raise ValidationError(f"{url}: the source answered 'not modified' for no copy", field="url")
            return cache_hit(self.directory, self.directory / "sha256" / record["digest"])
        directory = self.directory / "sha256"
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=PARTIAL_PREFIX)
        os.close(fd)
        partial = _Partial(Path(name), "sha256")
        try:
            self._receive(url, source, partial, deadline, report, first=stream)
            stored = self._keep(partial, Digest("sha256", partial.hexdigest()))
        except BaseException:
            partial.discard()
            raise
        if partial.validators:
            _write_json(
                record_path, {"url": url, "digest": stored.name, "validators": partial.validators}, url
            )
        else:
            record_path.unlink(missing_ok=True)  # nothing to revalidate with: fetched every time
        return stored

    def _receive(
        self,
        url: str,
        source: OpenArtifact,
        partial: _Partial,
        deadline: float,
        report: Progress,
        *,
        first: ArtifactStream | None = None,
    ) -> None:
        """Read the artifact into ``partial``, resuming after a cut while each try brings bytes."""
        for attempt in range(1, RESUME_ATTEMPTS + 1):
            before = partial.size
            try:
                stream = first or source(
                    url, offset=partial.size, deadline=deadline, validators=partial.validators
                )
                first = None
                self._transfer(url, stream, partial, deadline, report)
                return
            except _Cut as cut:
                if attempt == RESUME_ATTEMPTS or partial.size <= before:
                    raise ValidationError(cut.message, field="url") from None
                log.info("%s; resuming from byte %d", cut.message, partial.size)

    def _transfer(
        self, url: str, stream: ArtifactStream, partial: _Partial, deadline: float, report: Progress
    ) -> None:
        """Append ``stream`` to ``partial``: _Cut when it ends short of the size it announced."""
        with contextlib.closing(stream.body) as body:
            if stream.offset != partial.size:
                if stream.offset != 0:
                    raise ValidationError(
                        f"{url}: the boot source started at byte {stream.offset}, not "
                        f"{partial.size} or 0 as asked",
                        field="url",
                    )
                partial.restart()
            if stream.validators != partial.validators:
                partial.note_validators(dict(stream.validators), url)
            total = stream.size
            if total is not None and total > MAX_DOWNLOAD_BYTES:
                raise ValidationError(f"{url}: larger than {MAX_DOWNLOAD_BYTES} bytes ({total})", field="url")
            read = getattr(body, "read1", body.read)
            report(partial.size, total)
            while True:
                try:
                    chunk = read(_CHUNK)
                except OSError as err:
                    raise _Cut(f"{url}: download failed: {describe(err)}") from None
                if not chunk:
                    break
                partial.append(chunk, url)
                report(partial.size, total)
                remaining(deadline, url)
            if total is not None and partial.size != total:
                raise _Cut(
                    f"{url}: download failed: the source sent {partial.size - stream.offset} of the "
                    f"{total - stream.offset} bytes it announced"
                )

    # ----------------------------------------------------------------------- stored copies

    def _blob(self, digest: Digest) -> Path:
        return self.directory / digest.algorithm / digest.hex

    def _hit(self, digest: Digest, url: str) -> Path | None:
        """The verified copy of ``digest``, re-hashed unless its file state matches its record; a
        copy that does not match is removed (None: fetch it again).
        """
        blob = self._blob(digest)
        stamp = blob.with_name(blob.name + STAMP_SUFFIX)
        try:
            state = os.stat(blob, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISREG(state.st_mode):
            if _read_json(stamp) == _file_state(state):
                return blob
            actual = hash_file(blob, digest.algorithm)
            if actual == digest.hex:
                _write_json(stamp, _file_state(blob.stat()), url)
                return blob
        else:
            actual = "not a regular file"
        log.warning(
            "%s: the cached copy %s is corrupt (expected %s, found %s); removed it, fetching it again",
            url,
            blob,
            digest,
            actual,
        )
        blob.unlink(missing_ok=True)
        stamp.unlink(missing_ok=True)
        return None

    def _keep(self, partial: _Partial, digest: Digest) -> Path:
        """Move the complete, verified ``partial`` to its place and record its file state."""
        partial.close()
        blob = self._blob(digest)
        blob.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial.path, blob)
        partial.record.unlink(missing_ok=True)
        _write_json(blob.with_name(blob.name + STAMP_SUFFIX), _file_state(blob.stat()), str(blob))
        return blob

    def _resumable(self, url: str, digest: Digest) -> _Partial:
        """The partial download of ``url`` with ``digest``: what an earlier fetch left, or empty."""
        directory = self.directory / _PARTIALS
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / _partial_key(url, str(digest))
        identity = {"url": url, "checksum": str(digest)}
        record = _read_json(path.with_name(path.name + ".json"))
        validators = record.get("validators") if isinstance(record, dict) else None
        if not isinstance(record, dict) or any(record.get(k) != v for k, v in identity.items()):
            path.unlink(missing_ok=True)
            validators = None
        validators = dict(validators) if isinstance(validators, dict) else {}
        partial = _Partial(path, digest.algorithm, validators=validators, identity=identity)
        partial.note_validators(validators, url)
        return partial

    def _url_record_path(self, url: str) -> Path:
        return self.directory / _URLS / f"{hashlib.sha256(url.encode()).hexdigest()}.json"

    def _url_record(self, path: Path, url: str) -> dict[str, Any] | None:
        """What the cache remembers of the un-checksummed ``url``, when its copy is still intact."""
        record = _read_json(path)
        if (
            not isinstance(record, dict)
            or record.get("url") != url
            or not isinstance(record.get("validators"), dict)
        ):
            return None
        digest = record.get("digest")
        if not isinstance(digest, str) or len(digest) != CHECKSUM_ALGORITHMS["sha256"]:
            return None
        return record if self._hit(Digest("sha256", digest), url) else None

    def cached_path(self, url: str, checksum: str | None) -> Path | None:
        """Where the artifact ``url`` (with ``checksum``) is kept in the cache, when it is."""
        digest = parse_checksum(checksum)
        if digest is None:
            record = _read_json(self._url_record_path(url))
            if not isinstance(record, dict) or record.get("url") != url:
                return None
            digest = Digest("sha256", str(record.get("digest")))
        blob = self._blob(digest)
        return blob if blob.exists() else None

    # -------------------------------------------------------------------- listing and pruning

    def entries(self) -> list[CacheEntry]:
        """Every verified artifact and resumable partial download in the cache."""
        found = []
        for algorithm, length in CHECKSUM_ALGORITHMS.items():
            for path in sorted((self.directory / algorithm).glob("*")):
                if len(path.name) == length and set(path.name) <= set(string.hexdigits):
                    state = path.stat()
                    found.append(
                        CacheEntry(
                            "artifact", f"{algorithm}:{path.name}", path, state.st_size, state.st_mtime
                        )
                    )
        for record_path in sorted((self.directory / _PARTIALS).glob("*.json")):
            record, path = _read_json(record_path), record_path.with_suffix("")
            if isinstance(record, dict) and path.exists():
                state = path.stat()
                found.append(
                    CacheEntry(
                        "partial",
                        str(record.get("checksum")),
                        path,
                        state.st_size,
                        state.st_mtime,
                        str(record.get("url")),
                    )
                )
        return found

    def prune(self, keep: Collection[Path]) -> list[CacheEntry]:
        """Remove every entry but those at the paths in ``keep`` and those being fetched; the removed."""
        removed = []
        for entry in self.entries():
            if entry.path in keep:
                continue
            with self._guard:  # no fetch of it starts while it goes
                if entry.digest in self._flights:  # being fetched (a partial's record names its checksum)
                    continue
                entry.path.unlink(missing_ok=True)
                suffix = STAMP_SUFFIX if entry.kind == "artifact" else ".json"
                entry.path.with_name(entry.path.name + suffix).unlink(missing_ok=True)
            removed.append(entry)
        for record_path in (self.directory / _URLS).glob("*.json"):
            record = _read_json(record_path)
            if (
                not isinstance(record, dict)
                or not (self.directory / "sha256" / str(record.get("digest"))).exists()
            ):
                record_path.unlink(missing_ok=True)
        return removed

    def sweep(self) -> list[Path]:
        """Remove what a killed volantd left that cannot be used: files being written that cannot be
        resumed, partial downloads whose record is missing or damaged, and records without their
        download. The paths removed.
        """
        removed = []
        for directory in (
            *(self.directory / a for a in CHECKSUM_ALGORITHMS),
            self.directory / _URLS,
            self.directory / _PARTIALS,
        ):
            for path in directory.glob(PARTIAL_PREFIX + "*"):
                path.unlink(missing_ok=True)
                removed.append(path)
        for path in (self.directory / _PARTIALS).glob("*"):
            data = path.with_suffix("") if path.suffix == ".json" else path
            record = _read_json(data.with_name(data.name + ".json"))
            valid = (
                isinstance(record, dict)
                and data.name == _partial_key(str(record.get("url")), str(record.get("checksum")))
                and data.exists()
            )
            if not valid:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed


def _partial_key(url: str, checksum: str) -> str:
    """The name of the partial download of ``url`` with ``checksum``."""
    return hashlib.sha256(f"{checksum}\n{url}".encode()).hexdigest()


def _file_state(state: os.stat_result) -> dict[str, int]:
    """What changes when a file's content may have: size, modification and change time, inode."""
    return {
        "size": state.st_size,
        "mtime_ns": state.st_mtime_ns,
        "ctime_ns": state.st_ctime_ns,
        "inode": state.st_ino,
    }


def hash_file(path: Path, algorithm: str) -> str:
    """The hex digest of the file ``path`` with ``algorithm`` (a :mod:`hashlib` name), read in chunks."""
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as source:
        while chunk := source.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _read_json(path: Path) -> Any:
    """The JSON document in ``path``; None when it is missing or damaged."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, document: Any, url: str) -> None:
    """Replace ``path`` with ``document`` (written to a partial file first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=PARTIAL_PREFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            _write(out, json.dumps(document).encode(), path.parent, url)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
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
