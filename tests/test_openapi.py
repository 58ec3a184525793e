"""The OpenAPI document: generated from the live routes, committed, complete, plugin routes included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import falcon
import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict

from volant_core import hookimpl
from volant_core.api.models import MAX_HISTORY_LIMIT
from volant_core.api.openapi.export import DEFAULT_OUTPUT, REGENERATE
from volant_core.api.openapi.generator import METHODS
from volant_core.api.openapi.operations import operation
from volant_core.cli.volar import cli
from volant_core.descriptors import RouteDescriptor
from volant_core.testing.daemon import RunningDaemon, running_daemon

REPO = Path(__file__).resolve().parents[1]
PING = "/api/v1/test-plugin/ping"


class Pong(BaseModel):
    """What the test plugin's ping answers."""

    model_config = ConfigDict(extra="forbid")
    pong: bool


class Ping:
    """A plugin resource answering pings."""

    @operation(response=Pong)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Answer a ping."""
        resp.media = {"pong": True}

    @operation(response=Pong)
    def on_get_drift(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Answer more than the model says (the check turns it into a 500)."""
        resp.media = {"pong": True, "undeclared": 1}


class RoutePlugin:
    """An in-test plugin mounting ``PING`` and ``PING/drift`` (and, if asked, a clashing ``/healthz``)."""

    def __init__(self, *extra: RouteDescriptor) -> None:
        self.extra = extra

    @hookimpl
    def volant_api_routes(self) -> list[RouteDescriptor]:
        """The test routes."""
        ping = Ping()
        return [
            RouteDescriptor(PING, ping, tags=("test-plugin",)),
            RouteDescriptor(f"{PING}/drift", ping, suffix="drift"),
            *self.extra,
        ]


@pytest.fixture(scope="module")
def api() -> Any:
    """A daemon with the test route plugin, answering to the name ``volant.test`` too."""
    with running_daemon(plugins=[("test-routes", RoutePlugin())], api_hosts="volant.test") as daemon:
        yield daemon


@pytest.fixture(scope="module")
def document(api: RunningDaemon) -> dict[str, Any]:
    """``GET /openapi`` of that daemon."""
    reply = api.request("GET", "/openapi")
    assert reply.status == 200, reply.body
    return reply.json()


def test_committed_document_is_the_generated_one(tmp_path: Path) -> None:
    output = tmp_path / "openapi.json"
    result = CliRunner().invoke(cli, ["openapi", "export", "--output", str(output)])
    assert result.exit_code == 0, result.output
    committed = REPO / DEFAULT_OUTPUT
    assert committed.exists(), f"{DEFAULT_OUTPUT} is missing; run `{REGENERATE}` at the repository root"
    assert output.read_text() == committed.read_text(), (
        f"{DEFAULT_OUTPUT} differs from the API's routes and models; run `{REGENERATE}` "
        "at the repository root and commit the result"
    )


def _served_operations(app: falcon.App) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every responder Falcon's compiled router dispatches to: the
    router walked directly (a private structure), to check the route table misses nothing.
    """
    found = set()
    nodes = list(app._router._roots)  # type: ignore[attr-defined]
    while nodes:
        node = nodes.pop()
        nodes.extend(node.children)
        if node.resource is None:
            continue
        path = node.uri_template.replace(":path}", "}")
        for method, responder in node.method_map.items():
            if getattr(responder, "__self__", None) is node.resource and method.lower() in METHODS:
                found.add((path, method.lower()))
    return found


def test_every_served_operation_is_documented(api: RunningDaemon, document: dict[str, Any]) -> None:
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    served = _served_operations(api.daemon.server.app)
    assert served == documented
    assert {"/api/v1/events/vms", "/openapi", "/api/v1/vms/{name}/agent/{path}", PING} <= {
        path for path, _ in served
    }


def test_every_operation_has_a_summary_and_response_schemas(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    ids = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            ids.append(op["operationId"])
            assert op["summary"] and op["tags"], where
            success = [code for code in op["responses"] if code[0] in "12" or code == "default"]
            assert len(success) == 1, where
            for code, response in op["responses"].items():
                if code in ("101", "204"):
                    assert "content" not in response, where
                    continue
                assert response["content"], f"{where} {code}"
                assert all("schema" in media for media in response["content"].values()), f"{where} {code}"
                if code.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/Error"
                    }, f"{where} {code}"
    assert len(ids) == len(set(ids))


def test_the_document_describes_what_the_routes_send(document: dict[str, Any]) -> None:
    paths = document["paths"]
    listing = paths["/api/v1/vms"]["get"]["responses"]["200"]
    assert listing["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/VMResource"},
    }
    assert listing["headers"]["X-Total-Count"]["required"] is True
    create = paths["/api/v1/vms"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateVMRequest"
    }
    assert set(create["responses"]) == {"201", "401", "403", "404", "409", "413", "415", "421", "422", "500"}
    name = paths["/api/v1/vms/{name}"]["get"]["parameters"][0]
    assert (name["in"], name["required"], name["schema"]["pattern"]) == (
        "path",
        True,
        "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
    )
    history = paths["/api/v1/vms/{name}/config/history"]["get"]["parameters"][1]
    assert (history["name"], history["in"], history["schema"]) == (
        "limit",
        "query",
        {"minimum": 0, "maximum": MAX_HISTORY_LIMIT, "type": "integer"},
    )
    stream = paths["/api/v1/events/vms"]["get"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]
    agent = paths["/api/v1/vms/{name}/agent/{path}"]
    assert set(agent) == {"get", "put", "post", "delete", "options", "head", "patch"}
    assert "default" in agent["post"]["responses"] and agent["post"]["requestBody"]["required"] is False
    assert paths["/healthz"]["get"]["security"] == [{}] and "401" not in paths["/healthz"]["get"]["responses"]
    assert document["components"]["securitySchemes"]["apiKey"]["name"] == "X-Volant-API-Key"


def test_servers_name_the_host_asked(api: RunningDaemon) -> None:
    reply = api.request("GET", "/openapi", headers={"Host": "volant.test:8123"})
    assert reply.json()["servers"] == [{"url": "http://volant.test:8123"}]


def test_plugin_routes_are_mounted_and_documented(api: RunningDaemon, document: dict[str, Any]) -> None:
    assert api.request("GET", PING).json() == {"pong": True}
    ping = document["paths"][PING]["get"]
    assert ping["summary"] == "Answer a ping."
    assert ping["tags"] == ["test-plugin"]
    assert ping["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Pong"
    }
    assert document["paths"][f"{PING}/drift"]["get"]["tags"] == ["test-routes"]  # the plugin's name
    assert {"name": "test-plugin"} in document["tags"]


def test_an_answer_off_its_declared_model_is_an_error_not_a_silent_drift(api: RunningDaemon) -> None:
    reply = api.request("GET", f"{PING}/drift")
    assert reply.status == 500
    assert reply.json()["error"]["code"] == "internal"


def test_a_plugin_route_clashing_with_a_mounted_one_fails_the_plugin() -> None:
    clash = RouteDescriptor("/healthz", Ping())
    with running_daemon(plugins=[("test-clash", RoutePlugin(clash))]) as daemon:
        assert daemon.request("GET", "/healthz").json() == {"status": "ok"}
        assert daemon.request("GET", PING).status == 404  # none of the plugin's routes
        plugins = {p["name"]: p for p in daemon.request("GET", "/api/v1/system/plugins").json()["plugins"]}
        assert plugins["test-clash"]["status"] == "failed"
        assert "/healthz is mounted already" in plugins["test-clash"]["error"]
