"""OpenAPI 3.1 from the live route table, and ``GET /openapi`` serving it.

For every route of :attr:`RoutedApp.routes` and every responder Falcon maps on
it (``on_<method>[_<suffix>]``):

* the path comes from the URI template (``{path:path}`` becomes ``{path}``),
  its parameters' schemas from the responder's annotations (or the converter);
* the summary and description from the responder's docstring;
* the request body, success status and body, response and request headers,
  query parameters and errors from its :class:`~volant_core.api.openapi.operations.Operation`;
* the errors every route can answer from the middleware: 413 (body limit),
  421 (Host check), 403 (address allowlist), 401 (API key; not on the open paths), and
  415 (Content-Type) on routes with a JSON body.

Schemas come from pydantic (JSON Schema 2020-12, which OpenAPI 3.1 uses),
request bodies in validation mode, responses in serialization mode, all under
``components/schemas``. See docs/adr/0013-openapi.md.
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import falcon
from falcon.routing import map_http_methods
from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from volant_core import __version__
from volant_core.api.openapi.operations import JSON, Operation, declared_operation, operation
from volant_core.api.openapi.routes import MountedRoute, RoutedApp
from volant_core.api.responses import Error
from volant_core.api.security import KEY_HEADER, OPEN_PATHS

OPENAPI_VERSION = "3.1.0"
#: Methods OpenAPI can describe, in the order a path item lists them.
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
#: Path of the document itself.
DOCUMENT_PATH = "/openapi"

#: What each error status means, for every route that may answer it.
ERROR_DESCRIPTIONS = {
    401: "Missing or wrong API key (only when volantd runs with VOLANT_API_KEY)",
    403: "Client address not allowed (VOLANT_API_ALLOW_CIDR), or a change asked by a web page whose "
    "origin is not in VOLANT_CORS_ORIGINS",
    404: "No such resource (or no such route)",
    409: "Conflicts with the current state (exists already, wrong state, disabled, in use)",
    413: "Request body over the size limit",
    415: "A JSON body sent without Content-Type: application/json",
    421: "The Host header names neither an address, localhost nor a name in VOLANT_API_HOSTS",
    422: "Invalid input: the message and details name each field at fault",
    500: "The hypervisor or a plugin failed (e.g. the VMM could not start)",
    502: "The guest agent is unreachable or answered badly",
    503: "Not ready yet (e.g. the VM's agent has not come up)",
    504: "The guest agent did not answer in time",
}

#: Falcon field converters and the schema of what they accept.
_CONVERTER_SCHEMAS: dict[str, dict[str, Any]] = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
}
_FIELD = re.compile(r"{(\w+)(?::(\w+)(?:\(.*?\))?)?}")
_SECURITY_SCHEMES = {
    "apiKey": {"type": "apiKey", "in": "header", "name": KEY_HEADER},
    "bearer": {"type": "http", "scheme": "bearer"},
}
#: Either no credentials (the key is optional: volantd asks for it only when configured) or one of them.
_SECURITY: list[dict[str, list[str]]] = [{}, {"apiKey": []}, {"bearer": []}]
_ANY = "*/*"
_FREE_FORM: dict[str, Any] = {_ANY: {"schema": {}}}

#: Success statuses that carry no body: 101 (the connection switched protocols), 204.
_BODILESS_STATUSES = (101, 204)


@dataclass(frozen=True)
class _Endpoint:
    """One documented operation: a method of a mounted route and its responder."""

    route: MountedRoute
    method: str
    responder: Any

    @property
    def function(self) -> Any:
        """The responder as written (without the checking wrapper of ``operation``)."""
        return inspect.unwrap(self.responder)

    @property
    def operation(self) -> Operation:
        """Its declared :class:`Operation`; without one, a 200 of any content type."""
        return declared_operation(self.responder) or Operation(media_type=_ANY)

    @property
    def path(self) -> str:
        """The OpenAPI path: the template without field converters."""
        return _FIELD.sub(r"{\1}", self.route.template)

    @property
    def operation_id(self) -> str:
        """``<ResourceClass>.on_<method>[_<suffix>]``: the Falcon responder it maps to."""
        suffix = f"_{self.route.suffix}" if self.route.suffix else ""
        return f"{type(self.route.resource).__name__}.on_{self.method}{suffix}"

    def path_types(self) -> dict[str, Any]:
        """Each path field and its type: the responder's annotation, else ``str``."""
        hints = typing.get_type_hints(self.function, include_extras=True)
        return {name: hints.get(name, str) for name, _ in _FIELD.findall(self.route.template)}

    def converters(self) -> dict[str, str]:
        """Path fields with a Falcon converter, and its name."""
        return {name: conv for name, conv in _FIELD.findall(self.route.template) if conv}


def endpoints(app: RoutedApp) -> Iterator[_Endpoint]:
    """Every operation the app serves, route by route in mounting order."""
    for route in app.routes:
        responders = map_http_methods(route.resource, suffix=route.suffix)
        for method in METHODS:
            if method.upper() in responders:
                yield _Endpoint(route, method, responders[method.upper()])


class _Schemas:
    """Collects the types to document and turns them into JSON Schemas sharing ``components``."""

    def __init__(self) -> None:
        self._inputs: list[tuple[int, JsonSchemaMode, TypeAdapter[Any]]] = []

    def add(self, annotation: Any, mode: JsonSchemaMode) -> int:
        """Register ``annotation``; returns the key :meth:`build` answers its schema under."""
        self._inputs.append((len(self._inputs), mode, TypeAdapter(annotation)))
        return len(self._inputs) - 1

    def build(self) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
        """The schema of each registered key, and the shared definitions they refer to."""
        by_key, definitions = TypeAdapter.json_schemas(
            self._inputs, by_alias=True, ref_template="#/components/schemas/{model}"
        )
        return {key: schema for (key, _), schema in by_key.items()}, definitions.get("$defs", {})


def build_spec(app: RoutedApp, server_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app`` served at ``server_url``."""
    schemas = _Schemas()
    error_key = schemas.add(Error, "serialization")
    planned = [(endpoint, _plan(endpoint, schemas)) for endpoint in endpoints(app)]
    resolved, components = schemas.build()
    paths: dict[str, dict[str, Any]] = {}
    for endpoint, plan in planned:
        paths.setdefault(endpoint.path, {})[endpoint.method] = _describe(
            endpoint, plan, resolved, resolved[error_key]
        )
    tags = sorted({tag for route in app.routes for tag in route.tags})
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Volant API",
            "version": __version__,
            "description": "volantd, the Volant control plane: microVMs, their configuration, "
            "deployments and runtime manifests. Errors are always "
            '`{"error": {"code", "message", "details"}}`.',
        },
        "servers": [{"url": server_url}],
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": _SECURITY_SCHEMES},
        "security": _SECURITY,
    }


@dataclass(frozen=True)
class _Plan:
    """Schema keys of one endpoint's types, registered before the schemas are built."""

    path: dict[str, int]
    query: dict[str, int]
    body: int | None
    response: int | None


def _plan(endpoint: _Endpoint, schemas: _Schemas) -> _Plan:
    op = endpoint.operation
    return _Plan(
        path={name: schemas.add(tp, "validation") for name, tp in endpoint.path_types().items()},
        query={name: schemas.add(tp, "validation") for name, tp in op.query.items()},
        body=schemas.add(op.body, "validation") if op.body is not None else None,
        response=schemas.add(op.response, "serialization") if op.response is not None else None,
    )


def _parameter(name: str, where: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter object; a description inside the schema moves up to the parameter."""
    schema = dict(schema)
    parameter: dict[str, Any] = {"name": name, "in": where, "required": where == "path"}
    if "description" in schema:
        parameter["description"] = schema.pop("description")
    parameter["schema"] = schema
    return parameter


def _docs(endpoint: _Endpoint) -> tuple[str, str]:
    """Summary (first docstring line) and description (the rest) of the responder."""
    doc = inspect.getdoc(endpoint.function) or inspect.getdoc(type(endpoint.route.resource))
    if not doc:
        return f"{endpoint.method.upper()} {endpoint.path}", ""
    summary, _, rest = doc.partition("\n")
    return summary.strip(), rest.strip()


def _errors(endpoint: _Endpoint) -> list[int]:
    """Error statuses of the endpoint: declared, implied by a body, and those of the middleware."""
    op = endpoint.operation
    statuses = {413, 403, 421, *op.errors}
    if endpoint.route.template not in OPEN_PATHS:
        statuses.add(401)
    if op.body is not None or op.query:
        statuses.add(422)
    if op.body is not None:
        statuses.add(415)
    return sorted(statuses)


def _describe(
    endpoint: _Endpoint, plan: _Plan, schemas: dict[int, dict[str, Any]], error: dict[str, Any]
) -> dict[str, Any]:
    """The OpenAPI operation object of ``endpoint``."""
    op = endpoint.operation
    summary, description = _docs(endpoint)
    converters = endpoint.converters()
    parameters = [
        _parameter(name, "path", _CONVERTER_SCHEMAS.get(converters.get(name, ""), schemas[key]))
        for name, key in plan.path.items()
    ] + [_parameter(name, "query", schemas[key]) for name, key in plan.query.items()]
    parameters += [
        _parameter(name, "header", {"type": "string", "description": text})
        for name, text in sorted(op.request_headers.items())
    ]
    responses: dict[str, Any] = {}
    if op.passthrough:
        responses["default"] = {"description": "The answer relayed as is", "content": _FREE_FORM}
    else:
        success: dict[str, Any] = {"description": summary}
        if plan.response is not None:
            success["content"] = {op.media_type: {"schema": schemas[plan.response]}}
        elif op.status not in _BODILESS_STATUSES:
            success["content"] = {op.media_type: {"schema": {}}}
        if op.headers:
            success["headers"] = {
                name: {"description": text, "required": True, "schema": {"type": "string"}}
                for name, text in sorted(op.headers.items())
            }
        responses[str(op.status)] = success
    for status in _errors(endpoint):
        responses[str(status)] = {
            "description": ERROR_DESCRIPTIONS.get(status, "Error"),
            "content": {JSON: {"schema": error}},
        }
    described: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "summary": summary,
        "tags": list(endpoint.route.tags),
        "responses": responses,
    }
    if description:
        described["description"] = description
    if parameters:
        described["parameters"] = parameters
    if op.passthrough:
        described["requestBody"] = {"required": False, "content": _FREE_FORM}
    elif plan.body is not None:
        described["requestBody"] = {"required": True, "content": {JSON: {"schema": schemas[plan.body]}}}
    if endpoint.route.template in OPEN_PATHS:
        described["security"] = [{}]
    return described


class OpenApiDocument:
    """``/openapi``: the OpenAPI 3.1 document of this daemon, plugin routes included."""

    def __init__(self, app: RoutedApp) -> None:
        self.app = app

    @functools.cached_property
    def _spec(self) -> dict[str, Any]:
        """The document, built on first use (the routes are all mounted by then)."""
        return build_spec(self.app, "")

    @operation(response=dict[str, Any])
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The OpenAPI document; ``servers`` names the host the request was sent to."""
        resp.media = {**self._spec, "servers": [{"url": req.prefix}]}
