"""Request bodies: JSON in, pydantic models out, field-level 422 on anything else."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import falcon
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from volant_core.errors import ValidationError

M = TypeVar("M", bound=BaseModel)


def read_json(req: falcon.Request) -> Any:
    """The request body parsed as JSON; 400-class ValidationError when it is not JSON."""
    raw = req.bounded_stream.read()
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


def query_flag(req: falcon.Request, name: str) -> bool:
    """Query parameter ``name`` as a boolean (true/false, 1/0, yes/no); False when absent."""
    raw = (req.get_param(name) or "false").lower()
    if raw not in _FLAGS:
        raise ValidationError(f"{name}: {raw!r} is not true or false", field=name)
    return _FLAGS[raw]


_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

