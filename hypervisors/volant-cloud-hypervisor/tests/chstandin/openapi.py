"""Cloud Hypervisor v54's REST API as its OpenAPI file describes it, loaded from the file.

:class:`ApiContract` finds the operation of a request (path under ``/api/v1`` and method), checks
its JSON body against the operation's request schema, and checks an answer's status and body
against the operation's responses. Schemas are validated with jsonschema-rs; the objects they
describe are taken as closed (a property the schema does not name is refused: Cloud Hypervisor
would ignore it, and Volant never sends what is ignored).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

#: The contract file, copied beside the tests.
OPENAPI_FILE = Path(__file__).resolve().parent.parent / "contracts" / "cloud-hypervisor-v54-openapi.yaml"
BASE_PATH = "/api/v1"


class ApiViolation(ValueError):
    """A request or an answer the OpenAPI file does not allow; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Operation:
    """One path and method of the API."""

    endpoint: str
    method: str
    request_schema: dict[str, Any] | None
    request_required: bool
    #: Status (as text) → the response's JSON schema (None: no body).
    responses: dict[str, dict[str, Any] | None]


def _closed(schema: Any) -> Any:
    """``schema`` with every object that lists properties (and says nothing of others) closed."""
    if isinstance(schema, dict):
        closed = {key: _closed(value) for key, value in schema.items()}
        if "properties" in closed and "additionalProperties" not in closed:
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


def _json_schema(content: dict[str, Any] | None) -> dict[str, Any] | None:
    media = (content or {}).get("application/json")
    return media.get("schema") if media else None


class ApiContract:
    """The operations of the OpenAPI file at ``path``."""

    def __init__(self, path: Path = OPENAPI_FILE) -> None:
        document = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        self.version = str(document["info"]["version"])
        self._components = _closed(copy.deepcopy(document.get("components", {})))
        self.operations: dict[tuple[str, str], Operation] = {}
        for raw_path, methods in document["paths"].items():
            for method, spec in methods.items():
                body = spec.get("requestBody") or {}
                responses = {
                    str(status): _json_schema(answer.get("content"))
                    for status, answer in (spec.get("responses") or {}).items()
                }
                self.operations[(raw_path.lstrip("/"), method.upper())] = Operation(
                    raw_path.lstrip("/"),
                    method.upper(),
                    _json_schema(body.get("content")),
                    bool(body.get("required")),
                    responses,
                )
        self._validators: dict[str, Any] = {}

    def operation(self, method: str, target: str) -> Operation:
        """The operation of ``method`` on the request target ``target``; :class:`ApiViolation` (404 or
        405) when the file has none.
        """
        path = target.split("?", 1)[0]
        if not path.startswith(BASE_PATH + "/"):
            raise ApiViolation(f"{target}: not under {BASE_PATH}", 404)
        endpoint = path[len(BASE_PATH) + 1 :]
        methods = {m for (e, m) in self.operations if e == endpoint}
        if not methods:
            raise ApiViolation(f"{endpoint}: no such path in the v54 API", 404)
        if method not in methods:
            raise ApiViolation(f"{method} {endpoint}: the v54 API allows only {sorted(methods)}", 405)
        return self.operations[(endpoint, method)]

    def check_request(self, operation: Operation, content_type: str | None, body: bytes) -> Any:
        """The decoded JSON body of a request for ``operation`` once checked; :class:`ApiViolation` when
        the body is missing, unexpected, not JSON, or not what the schema allows.
        """
        where = f"{operation.method} {operation.endpoint}"
        if operation.request_schema is None:
            if body:
                raise ApiViolation(f"{where} takes no body")
            return None
        if not body:
            if operation.request_required:
                raise ApiViolation(f"{where}: a JSON body is required")
            return None
        if (content_type or "").split(";")[0].strip() != "application/json":
            raise ApiViolation(f"{where}: Content-Type must be application/json, not {content_type!r}")
        try:
            value = json.loads(body)
        except ValueError as exc:
            raise ApiViolation(f"{where}: body is not JSON: {exc}") from None
        self._validate(operation.request_schema, value, f"{where} request body")
        return value

    def check_response(self, operation: Operation, status: int, body: Any) -> None:
        """Raise :class:`ApiViolation` (500) when ``status`` is not one of the operation's responses, or
        ``body`` does not match its schema (None: no body).
        """
        where = f"{operation.method} {operation.endpoint}"
        if str(status) not in operation.responses:
            raise ApiViolation(f"{where}: {status} is not one of {sorted(operation.responses)}", 500)
        schema = operation.responses[str(status)]
        if schema is None:
            if body is not None:
                raise ApiViolation(f"{where}: a {status} answer has no body", 500)
            return
        try:
            self._validate(schema, body, f"{where} {status} answer")
        except ApiViolation as exc:
            raise ApiViolation(str(exc), 500) from None

    def _validate(self, schema: dict[str, Any], value: Any, what: str) -> None:
        key = json.dumps(schema, sort_keys=True)
        validator = self._validators.get(key)
        if validator is None:
            root = {"allOf": [_closed(schema)], "components": self._components}
            validator = self._validators[key] = jsonschema_rs.Draft4Validator(root)
        errors = [
            f"{'/'.join(map(str, error.instance_path)) or '(root)'}: {error.message}"
            for error in validator.iter_errors(value)
        ]
        if errors:
            raise ApiViolation(f"{what} does not match the v54 schema: " + "; ".join(errors[:5]))
