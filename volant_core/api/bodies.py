"""Request bodies: JSON in, pydantic models out, field-level 422 on anything else."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

import falcon
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from volant_core.errors import UnsupportedMediaTypeError, ValidationError

M = TypeVar("M", bound=BaseModel)


def raw_body(req: falcon.Request) -> bytes:
    """The request body as sent; read once, so several readers (e.g. idempotency, parsing) share it."""
    if "raw_body" not in req.context:
        req.context.raw_body = req.bounded_stream.read()
    body: bytes = req.context.raw_body
    return body


#: The media type every JSON body must be sent as.
JSON_MEDIA_TYPE = "application/json"


def require_json_content_type(req: falcon.Request) -> None:
    """415 unless ``req`` says its body is ``application/json`` (parameters such as ``charset``
    allowed). A web page can send ``text/plain`` (or a form) to any address without asking the
    browser's permission first (no CORS preflight), but not ``application/json``: so refusing the
    others keeps pages on other sites from feeding volantd documents (ADR 25).
    """
    sent = req.content_type
    media_type = (sent or "").partition(";")[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        raise UnsupportedMediaTypeError(
            f"Content-Type: expected {JSON_MEDIA_TYPE} for a JSON body, got {sent or 'none'}; "
            f"send the header Content-Type: {JSON_MEDIA_TYPE}",
            field="Content-Type",
        )


def read_json(req: falcon.Request) -> Any:
    """The request body parsed as JSON: 415 when it is not sent as ``application/json``,
    422 when it is not JSON.
    """
    raw = raw_body(req)
    if raw:
        require_json_content_type(req)
    if not raw:
        raise ValidationError("request body: expected a JSON document, got nothing", field="body")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValidationError(f"request body: not valid JSON ({err})", field="body") from None


def parse_body(req: falcon.Request, model: type[M]) -> M:
    """Validate the JSON body against ``model``."""
    data = read_json(req)
    try:
        return model.model_validate(data)
    except PydanticValidationError as err:
        raise ValidationError.from_pydantic(err) from None


def query_count(req: falcon.Request, name: str, *, default: int, maximum: int) -> int:
    """Query parameter ``name`` as a whole number from 0 to ``maximum``; 422 naming it otherwise."""
    raw = req.get_param(name)
    if raw is None:
        return default
    digits = raw.lstrip("0") or "0"
    number = digits.isascii() and digits.isdigit() and len(digits) <= len(str(maximum))
    if not number or int(digits) > maximum:
        raise ValidationError(f"{name}: {raw!r} is not a whole number from 0 to {maximum}", field=name)
    return int(digits)


def query_choice(req: falcon.Request, name: str, choices: Sequence[str], *, default: str) -> str:
    """Query parameter ``name``: one of ``choices`` (any case), ``default`` when absent; else 422."""
    raw = req.get_param(name)
    if raw is None:
        return default
    if raw.lower() not in choices:
        raise ValidationError(f"{name}: {raw!r} is not one of {', '.join(choices)}", field=name)
    return raw.lower()


def query_list(req: falcon.Request, name: str) -> list[str]:
    """Every value of query parameter ``name``: repeated and/or comma-separated, blanks dropped."""
    values = req.get_param_as_list(name) or []
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def query_flag(req: falcon.Request, name: str) -> bool:
    """Query parameter ``name`` as a boolean (true/false, 1/0, yes/no); False when absent."""
    raw = (req.get_param(name) or "false").lower()
    if raw not in _FLAGS:
        raise ValidationError(f"{name}: {raw!r} is not true or false", field=name)
    return _FLAGS[raw]


_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
