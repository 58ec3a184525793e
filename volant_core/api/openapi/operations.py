"""What a responder says about itself for the OpenAPI document: the :func:`operation` decorator.

The generator reads the rest from the code itself: the HTTP method and the
path from the route table, the summary and description from the responder's
docstring, the path parameters from its annotations. ``operation`` adds what
the code cannot show: the request body model, the success status and body
model, response headers, query parameters, request headers and the errors
it may answer.

The declared success body is also enforced: after the responder ran, its
``resp.media`` is validated against the model, so the published document
cannot drift from what the server sends.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import falcon
from pydantic import TypeAdapter

#: Attribute of a responder holding its :class:`Operation`.
ATTRIBUTE = "__volant_operation__"
JSON = "application/json"

R = TypeVar("R", bound=Callable[..., None])


@dataclass(frozen=True)
class Operation:
    """The OpenAPI facts about one responder that its signature and docstring do not carry.

    ``response`` is the type of the success body (a pydantic model, ``list[Model]`` ...),
    None for an empty one; ``body`` the type of the JSON request body, None for none.
    ``errors`` are the error statuses the responder itself may answer (those every
    route can answer are added by the generator). ``query`` maps query parameter names
    to types, ``headers`` success-response header names to descriptions,
    ``request_headers`` the optional request headers it reads to descriptions.
    ``passthrough`` marks a relay: any request body, any status and body back.
    """

    status: int = 200
    response: Any = None
    body: Any = None
    errors: tuple[int, ...] = ()
    query: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    media_type: str = JSON
    passthrough: bool = False
    request_headers: Mapping[str, str] = field(default_factory=dict)


def operation(
    *,
    status: int = 200,
    response: Any = None,
    body: Any = None,
    errors: tuple[int, ...] = (),
    query: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    media_type: str = JSON,
    passthrough: bool = False,
    request_headers: Mapping[str, str] | None = None,
) -> Callable[[R], R]:
    """Declare a responder's :class:`Operation` (see there for the arguments).

    A JSON ``response`` model is checked against every successful ``resp.media``
    the responder sets: a mismatch raises (a 500), it is never sent silently.
    """
    declared = Operation(
        status,
        response,
        body,
        errors,
        dict(query or {}),
        dict(headers or {}),
        media_type,
        passthrough,
        dict(request_headers or {}),
    )
    checker = TypeAdapter(response) if response is not None and media_type == JSON else None

    def decorate(responder: R) -> R:
        if checker is None:
            setattr(responder, ATTRIBUTE, declared)
            return responder

        @functools.wraps(responder)
        def checked(resource: object, req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
            responder(resource, req, resp, **params)
            if resp.media is not None:
                checker.validate_python(resp.media)

        setattr(checked, ATTRIBUTE, declared)
        return checked  # type: ignore[return-value]

    return decorate


def declared_operation(responder: object) -> Operation | None:
    """The :class:`Operation` declared on ``responder``, or None when it has none."""
    found = getattr(responder, ATTRIBUTE, None)
    return found if isinstance(found, Operation) else None
