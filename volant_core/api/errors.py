"""The one place where errors become HTTP responses.

Every :class:`~volant_core.errors.VolantError` becomes its ``http_status`` with
the body ``{"error": {"code", "message", "details"}}``; Falcon's own errors
(unknown route, wrong method) get the same shape; anything else is a 500 whose
body hides the internals and whose traceback goes to the log.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon

from volant_core.errors import DiskFullError, VolantError

log = logging.getLogger(__name__)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON error body used by every response of the API."""
    return {"error": {"code": code, "message": message, "details": details}}


def handle_volant_error(req: falcon.Request, resp: falcon.Response, ex: VolantError, params: dict) -> None:
    """Map a VolantError to its status and JSON body."""
    resp.status = falcon.code_to_http_status(ex.http_status)
    resp.media = ex.to_dict()
    if ex.retry_after_s is not None:
        resp.set_header("Retry-After", str(ex.retry_after_s))


def handle_http_error(req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError, params: dict) -> None:
    """Give Falcon's own errors (404 route, 405 method, 413 ...) the Volant error shape."""
    resp.status = ex.status
    code = (ex.title or "error").lower().replace(" ", "_")
    resp.media = error_body(code, ex.description or ex.title or "error")
    if ex.headers:
        resp.set_headers(ex.headers)


def handle_unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict) -> None:
    """Log an unexpected exception and answer 500 without leaking internals."""
    log.exception("unhandled error on %s %s", req.method, req.path)
    resp.status = falcon.HTTP_500
    resp.media = error_body("internal", "internal error; see the volantd log")


def handle_os_error(req: falcon.Request, resp: falcon.Response, ex: OSError, params: dict) -> None:
    """A full disk (or quota) is a 503 naming the file; any other OS error is unexpected (500)."""
    if ex.errno not in DiskFullError.ERRNOS:
        handle_unexpected(req, resp, ex, params)
        return
    log.error("disk full on %s %s: %s", req.method, req.path, ex)
    full = DiskFullError.of(ex, ex.filename or "a file of volantd's state, cache or VM directories")
    handle_volant_error(req, resp, full, params)


def install(app: falcon.App) -> None:
    """Register the handlers on ``app`` (most specific last, as Falcon searches in reverse)."""
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(OSError, handle_os_error)
    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler(VolantError, handle_volant_error)
