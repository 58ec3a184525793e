"""The one exception hierarchy of Volant.

Every error a user can cause or meet derives from :class:`VolantError`. The
HTTP API maps ``http_status`` to the response status and the CLI maps
``exit_code`` to its exit status, each in one place, so plugins raise these
and never build responses themselves.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pydantic


def exception_text(err: BaseException) -> str:
    """The text of ``err``, an exception raised by code the core does not control (a plugin's):
    one whose ``str()`` itself raises is described instead, so reporting it cannot fail.
    """
    try:
        return str(err)
    except Exception:
        return "(its message cannot be shown)"


def describe_exception(err: BaseException) -> str:
    """``Type: text`` of ``err`` (see :func:`exception_text`), as failures are reported."""
    return f"{type(err).__name__}: {exception_text(err)}"


class VolantError(Exception):
    """Base of all Volant errors: a message for people, a stable code for programs."""

    http_status = 500
    exit_code = 1
    code = "internal"
    #: Seconds a client should wait before trying again, sent as ``Retry-After`` (None: not sent).
    retry_after_s: int | None = None

    def __init__(self, message: str, *, field: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: ``{"error": {"code", "message", "details"}}``."""
        details = self.details
        if details is None and self.field is not None:
            details = [{"field": self.field, "message": self.message}]
        return {"error": {"code": self.code, "message": self.message, "details": details}}


class ValidationError(VolantError):
    """Bad input: the message names the field and how to fix it."""

    http_status = 422
    exit_code = 2
    code = "invalid"

    @classmethod
    def from_pydantic(cls, err: pydantic.ValidationError, prefix: str = "") -> ValidationError:
        """The error for a failed pydantic validation: the message names the first field
        (``prefix`` + its dotted path), ``details`` lists every ``{"field", "message"}``.
        """
        details = []
        for item in err.errors():
            path = ".".join(str(p) for p in item["loc"]) or "body"
            details.append({"field": f"{prefix}{path}", "message": item["msg"]})
        first = details[0]
        message = f"{first['field']}: {first['message']}"
        if len(details) > 1:
            message += f" (and {len(details) - 1} more)"
        return cls(message, field=first["field"], details=details)


class UnsupportedMediaTypeError(ValidationError):
    """A JSON body sent without ``Content-Type: application/json``."""

    http_status = 415
    code = "unsupported_media_type"


class UnauthorizedError(VolantError):
    """The request carries no API key, or the wrong one (``VOLANT_API_KEY``)."""

    http_status = 401
    exit_code = 6
    code = "unauthorized"


class ForbiddenError(VolantError):
    """The client's address is not allowed (``VOLANT_API_ALLOW_CIDR``)."""

    http_status = 403
    exit_code = 7
    code = "forbidden"


class MisdirectedError(ForbiddenError):
    """The request's ``Host`` names neither volantd's listen address nor a name in
    ``VOLANT_API_HOSTS`` (a page on another site reaching volantd by DNS rebinding, say).
    """

    http_status = 421
    code = "misdirected"


class NotFoundError(VolantError):
    """The named VM, plugin, deployment or hypervisor does not exist."""

    http_status = 404
    exit_code = 3
    code = "not_found"


class ConflictError(VolantError):
    """The request clashes with the current state (exists already, wrong state, disabled)."""

    http_status = 409
    exit_code = 4
    code = "conflict"


class LimitError(VolantError):
    """A request over one of volantd's resource limits, refused before anything is written or
    started; the message names the limit, the numbers and the setting that changes it.
    """


class LimitConflictError(LimitError, ConflictError):
    """Over a limit because of what exists already (capacity in use, the VM count): 409."""

    code = "limit_exceeded"


class LimitValidationError(LimitError, ValidationError):
    """Over a limit on its own (a VM bigger than the host, too much metadata, too many replicas): 422."""


class PluginError(VolantError):
    """A plugin misbehaved (duplicate registration, broken hook)."""

    http_status = 500
    code = "plugin_error"


class LaunchError(VolantError):
    """The hypervisor could not start the VM."""

    http_status = 500
    code = "launch_failed"


class AgentError(VolantError):
    """The guest agent could not be reached or answered badly."""

    http_status = 502
    exit_code = 5
    code = "agent_unreachable"


class AgentAnswerTooLarge(AgentError):
    """An answer the agent sent to be read whole (not streamed) is over the size limit."""

    code = "agent_answer_too_large"


class AgentTimeout(AgentError):
    """The guest agent did not answer in time."""

    http_status = 504
    code = "agent_timeout"


class NotReadyError(VolantError):
    """The daemon or a dependency is not ready yet."""

    http_status = 503
    exit_code = 5
    code = "not_ready"


class StoreUnavailableError(NotReadyError):
    """The state database cannot be written now: another process holds its lock past the busy
    timeout, or the disk under the state directory is full. Nothing of the request was kept.
    """

    code = "store_unavailable"
    retry_after_s = 5


class DiskFullError(StoreUnavailableError):
    """A file under volantd's directories could not be written: the disk (or its quota) is full."""

    code = "disk_full"
    retry_after_s = 30

    #: The ``errno`` values of an ``OSError`` that mean a full disk or quota.
    ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

    @classmethod
    def of(cls, err: OSError, where: str) -> DiskFullError:
        """The error for ``err`` (a full disk, see :attr:`ERRNOS`) met while writing ``where``."""
        return cls(
            f"no space left on the disk writing {where} ({err.strerror}); nothing was kept: "
            "free space there, then retry"
        )


class BusyError(NotReadyError):
    """Every resource a request waits for stayed taken past its wait limit; retry later."""

    code = "busy"
    retry_after_s = 1
