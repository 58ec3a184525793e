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
