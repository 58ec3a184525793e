"""``Idempotency-Key``: a retried ``POST`` gets the first answer instead of creating again.

Wrap a responder with :func:`idempotent` (outside ``@operation``) and document
the header with ``@operation(request_headers=REQUEST_HEADERS)``. The resource
must have an ``idempotency`` attribute, the store's
:class:`~volant_core.store.idempotency.IdempotencyRepository`.

A key belongs to the client's credential (the API key it sends) and to the
request's method and path: two clients, or two routes, never share a key. A
request with a key claims it before the responder runs. Its answer is then
remembered for :data:`~volant_core.store.idempotency.KEY_LIFETIME` (2xx and
4xx alike; a 5xx or a crash frees the key, so a retry runs again; a key whose
request a stopped daemon never finished is freed at the next start). A later
request with the same key and the same body gets that status and body back;
with another body, or while the first one still runs, it gets a 409 naming the
header.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any, Protocol

import falcon

from volant_core.api import errors
from volant_core.api.bodies import raw_body
from volant_core.api.security import presented_key
from volant_core.errors import ConflictError, ValidationError, VolantError
from volant_core.store.idempotency import KEY_LIFETIME, IdempotencyRepository, KeySlot
from volant_core.store.records import IdempotencyRecord

HEADER = "Idempotency-Key"
#: Longest key accepted.
MAX_KEY_LENGTH = 255
#: ``@operation(request_headers=...)`` of an idempotent responder.
REQUEST_HEADERS = {
    HEADER: "Optional client-chosen key (1-255 printable characters). A retry with the same key and "
    "body gets the first answer (status and body, 4xx included) without acting again; the same key "
    "with another body, or while the first request still runs, is a 409. A key is the client's own "
    "(its API key) and this operation's. Keys expire after "
    f"{KEY_LIFETIME.total_seconds() / 3600:g} hours."
}


class KeyedResource(Protocol):
    """A resource whose responders are :func:`idempotent`."""

    idempotency: IdempotencyRepository


Responder = Callable[..., None]


def idempotent(responder: Responder) -> Responder:
    """Make ``responder`` honour the ``Idempotency-Key`` request header."""

    @functools.wraps(responder)
    def keyed(resource: KeyedResource, req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
        key = req.get_header(HEADER)
        if key is None:
            responder(resource, req, resp, **params)
            return
        _check_key(key)
        slot = KeySlot(_owner(req), f"{req.method} {req.path}", key)
        digest = hashlib.sha256(raw_body(req)).hexdigest()
        keys = resource.idempotency
        held = keys.claim(slot, digest)
        if held is not None:
            _replay(held, digest, resp)
            return
        try:
            responder(resource, req, resp, **params)
        except VolantError as err:
            errors.handle_volant_error(req, resp, err, params)
        except falcon.HTTPError as err:
            errors.handle_http_error(req, resp, err, params)
        except BaseException:
            keys.release(slot)
            raise
        if resp.status_code >= 500:
            keys.release(slot)
        else:
            keys.finish(slot, resp.status_code, resp.media)

    return keyed


def _check_key(key: str) -> None:
    if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationError(
            f"{HEADER}: give 1 to {MAX_KEY_LENGTH} printable characters, not {key!r}", field=HEADER
        )


def _owner(req: falcon.Request) -> str:
    """Whose keys the request uses: a digest of the API key it carries ('' without one)."""
    credential = presented_key(req)
    return "" if credential is None else hashlib.sha256(credential.encode()).hexdigest()


def _replay(held: IdempotencyRecord, digest: str, resp: falcon.Response) -> None:
    """Answer as the request that claimed the key did; 409 when its body differs or it still runs."""
    if held.digest != digest:
        raise ConflictError(
            f"{HEADER} {held.key!r} was used for another request (first: {held.scope} with another body); "
            "use a new key for a new request",
            field=HEADER,
        )
    if held.status is None:
        raise ConflictError(
            f"{HEADER} {held.key!r}: the first request with this key is still running; retry later",
            field=HEADER,
        )
    resp.status = held.status
    resp.media = held.response
