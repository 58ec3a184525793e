"""A real guest's workload through the API: actions, its OpenAPI document and its console log."""

from __future__ import annotations

import http.client
import json
import urllib.parse

import pytest

from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.processes import cpu_used_over

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api(hello_web: RunningDaemon) -> RunningDaemon:
    """The module's daemon with its running guest ``web`` (tests/e2e/conftest.py)."""
    return hello_web


def test_action_reaches_the_workload(api: RunningDaemon) -> None:
    answer = api.request("POST", "/api/v1/vms/web/actions/echo", {"x": 1})
    assert answer.status == 200, answer.body
    assert answer.json() == {"echo": {"x": 1}, "path": "/echo"}
    assert api.request("POST", "/api/v1/vms/web/actions/echo").json() == {"echo": None, "path": "/echo"}


def test_bad_actions(api: RunningDaemon) -> None:
    unknown = api.request("POST", "/api/v1/vms/web/actions/nope", {})
    assert unknown.status == 404 and "its actions: echo" in unknown.json()["error"]["message"]
    not_object = api.request("POST", "/api/v1/vms/web/actions/echo", [1, 2])
    assert not_object.status == 422


def test_workload_openapi_comes_from_the_guest(api: RunningDaemon) -> None:
    answer = api.request("GET", "/api/v1/vms/web/openapi")
    assert answer.status == 200
    assert set(answer.json()["paths"]) == {"/", "/echo"}


#: CPU seconds the idle guest's QEMU may use over :data:`IDLE_WINDOW_S` (TCG idles at a few percent
#: of a core; an agent spinning on a lane no host holds keeps a whole core busy).
IDLE_WINDOW_S = 5.0
IDLE_CPU_S = IDLE_WINDOW_S / 2


def test_an_idle_guest_leaves_the_host_cpu_alone(api: RunningDaemon) -> None:
    """Between requests most agent lanes have no host connected: kestrel waits for one without
    spinning, so a running VM that nobody talks to does not keep a host core busy.
    """
    pid = api.request("GET", "/api/v1/vms/web").json()["pid"]
    assert cpu_used_over(pid, IDLE_WINDOW_S) < IDLE_CPU_S


def test_logs_tail_and_follow(api: RunningDaemon) -> None:
    """Runs last in this module: it stops the guest."""
    logs = api.request("GET", "/api/v1/vms/web/logs?tail=500").body.decode(errors="replace")
    assert "kestrel: workload healthy" in logs
    assert len(api.request("GET", "/api/v1/vms/web/logs?tail=3").body.splitlines()) == 3

    url = urllib.parse.urlsplit(api.url)
    stream = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    stream.request("GET", "/api/v1/vms/web/logs?tail=0&follow=true")
    response = stream.getresponse()
    assert response.status == 200
    api.request("POST", "/api/v1/vms/web/actions/echo", {"marker": "followed"})
    seen = b""
    while b'"followed"' not in seen:
        line = response.readline()  # through the chunked framing (the server keeps the connection)
        assert line, "the log stream ended before the workload's output arrived"
        seen += line
    assert json.loads(seen.split(b"echo ", 1)[1].splitlines()[0]) == {"marker": "followed"}
    # Stopping the VM ends the stream: reading it to its end returns; on a stream left open the
    # read raises TimeoutError after the connection's 60 s.
    assert api.request("POST", "/api/v1/vms/web/stop").json()["status"] == "stopped"
    response.read()
    stream.close()
    assert api.request("POST", "/api/v1/vms/web/actions/echo", {}).status == 409
