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


def field_errors(err: PydanticValidationError, prefix: str = "") -> ValidationError:
    """Turn a pydantic error into a ValidationError whose message names the first field."""
    details = []
    for item in err.errors():
        path = ".".join(str(p) for p in item["loc"]) or "body"
        details.append({"field": f"{prefix}{path}", "message": item["msg"]})
    first = details[0]
    message = f"{first['field']}: {first['message']}"
    if len(details) > 1:
        message += f" (and {len(details) - 1} more)"
    return ValidationError(message, field=first["field"], details=details)


def parse_body(req: falcon.Request, model: type[M]) -> M:
    """Validate the JSON body against ``model``."""
    data = read_json(req)
    try:
        return model.model_validate(data)
    except PydanticValidationError as err:
        raise field_errors(err) from None
