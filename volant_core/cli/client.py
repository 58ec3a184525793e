"""volar's HTTP client: JSON over HTTP to volantd, errors turned into one readable line."""

from __future__ import annotations

import contextlib
import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import click

from volant_core.errors import (
    AgentError,
    AgentTimeout,
    ConflictError,
    ForbiddenError,
    MisdirectedError,
    NotFoundError,
    NotReadyError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    ValidationError,
    VolantError,
)

#: HTTP status -> the error class whose exit code volar uses.
_STATUS_ERRORS: dict[int, type[VolantError]] = {
    400: ValidationError,
    401: UnauthorizedError,
    403: ForbiddenError,
    413: ValidationError,
    415: UnsupportedMediaTypeError,
    421: MisdirectedError,
    422: ValidationError,
    404: NotFoundError,
    409: ConflictError,
    502: AgentError,
    503: NotReadyError,
    504: AgentTimeout,
}


class ApiError(click.ClickException):
    """A failed API call, printed as ``Error: <message>`` with the documented exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it per instance


class Unreachable(ApiError):
    """volantd could not be reached (not running, wrong address, connection refused)."""

    def __init__(self, base_url: str, reason: object) -> None:
        super().__init__(
            f"cannot reach volantd at {base_url}: {reason} (is it running? start it with `volantd`)", 1
        )


@dataclass(frozen=True)
class Reply:
    """An API answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON (None when empty)."""
        return json.loads(self.body) if self.body else None


class ApiClient:
    """Talks to one volantd."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None
    ) -> urllib.request.Request:
        """The request to send: the API key added and, for a body whose type ``headers`` do not
        give, ``Content-Type: application/json`` (volantd refuses JSON sent as anything else).
        """
        request = urllib.request.Request(
            self.base_url + path, data=body, method=method, headers=headers or {}
        )
        if body is not None and not request.has_header("Content-type"):
            request.add_header("Content-Type", "application/json")
        for header, value in self.credentials().items():
            request.add_header(header, value)
        return request

    def credentials(self) -> dict[str, str]:
        """The headers that authenticate a request (none without an API key)."""
        return {"X-Volant-API-Key": self.api_key} if self.api_key else {}

    def send(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Send a request and return the answer whatever its status; ApiError if volantd is unreachable."""
        body = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
        request = self._request(method, path, body, headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return Reply(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as err:
            return Reply(err.code, dict(err.headers), err.read())
        except (urllib.error.URLError, OSError) as err:
            raise Unreachable(self.base_url, getattr(err, "reason", err)) from None

    @contextlib.contextmanager
    def stream(
        self, path: str, *, headers: dict[str, str] | None = None, timeout: float | None = None
    ) -> Iterator[http.client.HTTPResponse]:
        """``GET path`` whose body is read as it arrives (``timeout``: longest silence, None: forever).

        ApiError for a non-2xx answer or when volantd is unreachable.
        """
        request = self._request("GET", path, None, headers)
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as err:
            raise self.error_for(err.code, err.read()) from None
        except (urllib.error.URLError, OSError) as err:
            raise Unreachable(self.base_url, getattr(err, "reason", err)) from None
        with response:
            yield response

    def call(self, method: str, path: str, payload: Any = None, *, raw: bytes | None = None) -> Reply:
        """:meth:`send`, raising :class:`ApiError` for a non-2xx answer."""
        reply = self.send(method, path, payload, raw=raw)
        if reply.status >= 400:
            raise self.error_for(reply.status, reply.body)
        return reply

    def json(self, method: str, path: str, payload: Any = None) -> Any:
        """``call`` and return the parsed JSON body."""
        return self.call(method, path, payload).json()

    @staticmethod
    def error_for(status: int, body: bytes) -> ApiError:
        """The :class:`ApiError` for an error answer: its message and the exit code of its status."""
        try:
            error = json.loads(body)["error"]
            message = error["message"]
        except (ValueError, KeyError, TypeError):
            message = body.decode(errors="replace").strip() or f"HTTP {status}"
        exit_code = _STATUS_ERRORS[status].exit_code if status in _STATUS_ERRORS else 1
        return ApiError(f"{message} (HTTP {status})", exit_code)
