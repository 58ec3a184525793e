"""API access control against a real volantd over real sockets (issue 4, ADR 11).

API key, address allowlist with trusted proxies, CORS, names that try to leave
their directory, and ``volar --api-key``. The body-size limit (413) is tested in
``tests/test_api_bad_input.py::test_body_that_is_not_json_or_too_large``; here
only its place after the key check.
"""

from __future__ import annotations

import hmac
import http.client
import ipaddress
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from volant_core.api.app import MAX_BODY_BYTES
from volant_core.api.security import client_address
from volant_core.cli.client import Reply
from volant_core.errors import ForbiddenError, UnauthorizedError, ValidationError
from volant_core.settings import load_settings
from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.waiting import eventually, free_port

KEY = "s3cret-key"
VOLAR = Path(sys.executable).with_name("volar")
VOLANTD = Path(sys.executable).with_name("volantd")
ORIGIN = "https://console.example.com"
#: The whole 401 messages a client reads: no key, a wrong key, a key in the query string.
MISSING_KEY = "missing API key; send it in the X-Volant-API-Key header or as Authorization: Bearer"
INVALID_KEY = "invalid API key"
KEY_IN_QUERY = (
    "API keys are not accepted in the query string (URLs end up in logs); "
    "send it in the X-Volant-API-Key header or as Authorization: Bearer"
)


@pytest.fixture
def keyed() -> Iterator[RunningDaemon]:
    """A daemon that wants the API key :data:`KEY`."""
    with running_daemon(api_key=KEY) as daemon:
        yield daemon


def _headers(reply: Reply) -> dict[str, str]:
    return {name.lower(): value for name, value in reply.headers.items()}


def _assert_error(reply: Reply, status: int, code: str) -> str:
    """Check status and error shape; return the message."""
    assert reply.status == status, reply.body
    error = reply.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    return str(error["message"])


# --- API key ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, MISSING_KEY),
        ({"X-Volant-API-Key": "wrong"}, INVALID_KEY),
        ({"X-Volant-API-Key": KEY + "x"}, INVALID_KEY),
        ({"Authorization": "Bearer wrong"}, INVALID_KEY),
        # The token is all that follows the first space: a wrong key, not a missing one.
        ({"Authorization": f"Bearer {KEY} x"}, INVALID_KEY),
        ({"Authorization": f"Basic {KEY}"}, MISSING_KEY),
        ({"Authorization": "Bearer  "}, MISSING_KEY),
    ],
)
def test_missing_or_wrong_key_is_401(keyed: RunningDaemon, headers: dict[str, str], message: str) -> None:
    reply = keyed.request("GET", "/api/v1/vms", headers=headers)
    assert _assert_error(reply, 401, "unauthorized") == message
    assert _headers(reply)["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [{"X-Volant-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}, {"authorization": f"bearer {KEY}"}],
)
def test_right_key_in_either_header_is_accepted(keyed: RunningDaemon, headers: dict[str, str]) -> None:
    reply = keyed.request("GET", "/api/v1/vms", headers=headers)
    assert reply.status == 200
    assert "www-authenticate" not in _headers(reply)


def test_healthz_needs_no_key(keyed: RunningDaemon) -> None:
    assert keyed.request("GET", "/healthz").status == 200


def test_key_in_query_string_is_refused_and_not_logged(
    keyed: RunningDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="volant_core.api.server")
    for headers in ({}, {"X-Volant-API-Key": KEY}):
        reply = keyed.request("GET", f"/api/v1/vms?api_key={KEY}", headers=headers)
        assert _assert_error(reply, 401, "unauthorized") == KEY_IN_QUERY
    logged = "GET /api/v1/vms?api_key=<redacted> 401"
    eventually(lambda: caplog.text.count(logged) == 2, "the access log lines")
    assert KEY not in caplog.text


def test_an_empty_key_in_the_query_string_is_refused_too(keyed: RunningDaemon) -> None:
    reply = keyed.request("GET", "/api/v1/vms?api_key=", headers={"X-Volant-API-Key": KEY})
    assert _assert_error(reply, 401, "unauthorized") == KEY_IN_QUERY


def test_key_is_compared_in_constant_time(keyed: RunningDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("volant_core.api.security.hmac.compare_digest", recording)
    assert keyed.request("GET", "/api/v1/vms", headers={"X-Volant-API-Key": "wrong"}).status == 401
    assert keyed.request("GET", "/api/v1/vms", headers={"X-Volant-API-Key": KEY}).status == 200
    assert calls == [(b"wrong", KEY.encode()), (KEY.encode(), KEY.encode())]


def test_key_from_a_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(f"  {KEY}\n")
    with running_daemon(api_key_file=key_file) as daemon:
        assert daemon.request("GET", "/api/v1/vms", headers={"X-Volant-API-Key": KEY}).status == 200
        assert daemon.request("GET", "/api/v1/vms").status == 401


def test_key_is_checked_before_the_body_limit(keyed: RunningDaemon) -> None:
    host, port = keyed.daemon.server.address
    for headers, status in [({}, 401), ({"X-Volant-API-Key": KEY}, 413)]:
        connection = http.client.HTTPConnection(host, port, timeout=10)
        connection.putrequest("POST", "/api/v1/plugins")
        for name, value in {**headers, "Content-Length": str(MAX_BODY_BYTES + 1)}.items():
            connection.putheader(name, value)
        connection.endheaders()
        assert connection.getresponse().status == status
        connection.close()


# --- address allowlist -----------------------------------------------------


def test_peer_outside_the_allowlist_is_403_even_with_a_spoofed_forwarded_for() -> None:
    with running_daemon(api_allow_cidr="10.0.0.0/8") as daemon:
        for path in ("/api/v1/vms", "/healthz"):
            reply = daemon.request(
                "GET", path, headers={"X-Forwarded-For": "10.1.2.3", "X-Real-IP": "10.1.2.3"}
            )
            assert "127.0.0.1 is not in VOLANT_API_ALLOW_CIDR" in _assert_error(reply, 403, "forbidden")


def test_forwarded_for_counts_only_from_trusted_proxies() -> None:
    with running_daemon(api_allow_cidr="10.0.0.0/8", trusted_proxies="127.0.0.1/32") as daemon:
        allowed = daemon.request("GET", "/api/v1/vms", headers={"X-Forwarded-For": "10.1.2.3"})
        assert allowed.status == 200
        # The client put 10.1.2.3 in the header itself; the proxy appended the real 192.0.2.9.
        spoofed = daemon.request("GET", "/api/v1/vms", headers={"X-Forwarded-For": "10.1.2.3, 192.0.2.9"})
        assert "192.0.2.9 is not in" in _assert_error(spoofed, 403, "forbidden")
        # The proxy itself (no header) is not an allowed client, nor is a chain that does not parse.
        _assert_error(daemon.request("GET", "/api/v1/vms"), 403, "forbidden")
        garbage = daemon.request("GET", "/api/v1/vms", headers={"X-Forwarded-For": "10.1.2.3:80"})
        assert _assert_error(garbage, 403, "forbidden") == "access denied: cannot tell the client address"


def test_loopback_in_the_allowlist_gets_through_and_is_checked_before_the_key() -> None:
    with running_daemon(api_allow_cidr="fd00::/8, 127.0.0.0/8", api_key=KEY) as daemon:
        assert daemon.request("GET", "/api/v1/vms", headers={"X-Volant-API-Key": KEY}).status == 200
    with running_daemon(api_allow_cidr="10.0.0.0/8", api_key=KEY) as daemon:
        _assert_error(
            daemon.request("GET", "/api/v1/vms", headers={"X-Volant-API-Key": KEY}), 403, "forbidden"
        )


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("::ffff:10.0.0.5", None, "10.0.0.5"),
        ("::1", "2001:db8::7", "2001:db8::7"),
        ("::1", "2001:db8::7, fd00::1", "2001:db8::7"),
        ("fe80::1", "2001:db8::7", "fe80::1"),
        ("::1", None, "::1"),
    ],
)
def test_client_address_with_ipv6_and_mapped_peers(peer: str, forwarded_for: str | None, client: str) -> None:
    trusted = [ipaddress.ip_network("::1/128"), ipaddress.ip_network("fd00::/8")]
    assert client_address(peer, forwarded_for, trusted) == ipaddress.ip_address(client)


def test_invalid_cidr_stops_volantd_naming_the_variable(tmp_path: Path) -> None:
    env = {**os.environ, "VOLANT_API_ALLOW_CIDR": "10.0.0.0/8,10.0.0.300/24"}
    argv = [str(VOLANTD), "--listen", f"127.0.0.1:{free_port()}", "--state-dir", str(tmp_path)]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "VOLANT_API_ALLOW_CIDR" in result.stderr and "10.0.0.300/24" in result.stderr


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"VOLANT_API_ALLOW_CIDR": "10.0.0.1/8"}, "VOLANT_API_ALLOW_CIDR"),
        ({"VOLANT_TRUSTED_PROXIES": "proxy.example"}, "VOLANT_TRUSTED_PROXIES"),
        ({"VOLANT_CORS_ORIGINS": "console.example.com"}, "VOLANT_CORS_ORIGINS"),
        ({"VOLANT_API_KEY": "two words"}, "VOLANT_API_KEY"),
        ({"VOLANT_API_KEY_FILE": "/nonexistent/volant/key"}, "VOLANT_API_KEY_FILE"),
        ({"VOLANT_API_KEY_FILE": os.devnull, "VOLANT_API_KEY": KEY}, "VOLANT_API_KEY_FILE"),
    ],
)
def test_bad_security_settings_name_the_variable(
    tmp_path: Path, environ: dict[str, str], variable: str
) -> None:
    with pytest.raises(ValidationError, match=f"^{variable}: "):
        load_settings(environ, state_dir=tmp_path)


# --- CORS ------------------------------------------------------------------


def _preflight(daemon: RunningDaemon, origin: str) -> Reply:
    return daemon.request(
        "OPTIONS",
        "/api/v1/vms",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-volant-api-key, content-type",
        },
    )


def test_cors_preflight_is_answered_before_the_allowlist_and_the_key() -> None:
    with running_daemon(cors_origins=ORIGIN, api_key=KEY, api_allow_cidr="10.0.0.0/8") as daemon:
        reply = _preflight(daemon, ORIGIN)
        assert reply.status == 204 and reply.body == b""
        headers = _headers(reply)
        assert headers["access-control-allow-origin"] == ORIGIN
        for name in ("X-Volant-API-Key", "Authorization", "Content-Type"):
            assert name in headers["access-control-allow-headers"]
        assert {"POST", "PATCH", "DELETE"} <= {
            m.strip() for m in headers["access-control-allow-methods"].split(",")
        }
        assert "X-Total-Count" in headers["access-control-expose-headers"]
        assert headers["access-control-max-age"] == "600"  # browsers ask again after ten minutes
        assert "access-control-allow-credentials" not in headers
        other = _preflight(daemon, "https://evil.example")
        assert other.status == 204
        assert not [name for name in _headers(other) if name.startswith("access-control-")]


def test_cors_headers_on_answers_and_errors_for_allowed_origins_only() -> None:
    with running_daemon(cors_origins=f"{ORIGIN.upper()}/, http://localhost:3000", api_key=KEY) as daemon:
        ok = daemon.request("GET", "/api/v1/vms", headers={"Origin": ORIGIN, "X-Volant-API-Key": KEY})
        assert ok.status == 200
        headers = _headers(ok)
        assert headers["access-control-allow-origin"] == ORIGIN
        assert "X-Total-Count" in headers["access-control-expose-headers"]
        assert "Origin" in [value.strip() for value in headers["vary"].split(",")]
        # The Origin a client sends is compared without case and trailing slash, as the setting is.
        spelled = daemon.request(
            "GET", "/api/v1/vms", headers={"Origin": f"{ORIGIN.upper()}/", "X-Volant-API-Key": KEY}
        )
        assert _headers(spelled)["access-control-allow-origin"] == f"{ORIGIN.upper()}/"
        # Only an OPTIONS request is a preflight: a GET naming a method still gets its answer.
        asking = {"Origin": ORIGIN, "X-Volant-API-Key": KEY, "Access-Control-Request-Method": "GET"}
        assert daemon.request("GET", "/api/v1/vms", headers=asking).json() == ok.json()
        refused = daemon.request("GET", "/api/v1/vms", headers={"Origin": ORIGIN})
        assert refused.status == 401 and _headers(refused)["access-control-allow-origin"] == ORIGIN
        stranger = daemon.request(
            "GET", "/api/v1/vms", headers={"Origin": "https://evil.example", "X-Volant-API-Key": KEY}
        )
        assert stranger.status == 200
        assert not [name for name in _headers(stranger) if name.startswith("access-control-")]


def test_cors_wildcard_allows_any_origin() -> None:
    with running_daemon(cors_origins="*") as daemon:
        reply = daemon.request("GET", "/healthz", headers={"Origin": "https://anything.example"})
        assert _headers(reply)["access-control-allow-origin"] == "*"


def test_no_cors_headers_unless_configured(volantd: RunningDaemon) -> None:
    for reply in (
        volantd.request("GET", "/api/v1/vms", headers={"Origin": ORIGIN}),
        _preflight(volantd, ORIGIN),
    ):
        assert not [name for name in _headers(reply) if name.startswith("access-control-")]


# --- names that try to leave their directory -------------------------------


def _tree(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/vms/%2e%2e%2fetc"),
        ("GET", "/api/v1/vms/..%2Fetc"),
        ("GET", "/api/v1/vms/../etc"),
        ("GET", "/api/v1/vms/%2e%2e"),
        ("DELETE", "/api/v1/vms/%2e%2e"),
        ("POST", "/api/v1/vms/%2e%2e/start"),
        ("GET", "/api/v1/vms/%2e%2e/config/history"),
        ("GET", "/api/v1/vms/%2e%2e/agent/etc/passwd"),
        ("DELETE", "/api/v1/deployments/%2e%2e%2fetc"),
        ("GET", "/api/v1/deployments/%2e%2e"),
    ],
)
def test_dot_dot_names_in_paths_are_refused(volantd: RunningDaemon, method: str, path: str) -> None:
    before = _tree(volantd.state_dir)
    host, port = volantd.daemon.server.address
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request(method, path)  # sent as written: no client-side normalisation
    reply = connection.getresponse()
    assert 400 <= reply.status < 500
    assert set(json.loads(reply.read())["error"]) == {"code", "message", "details"}
    connection.close()
    assert _tree(volantd.state_dir) == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/vms", {"name": "../etc", "plugin": "hello-http"}),
        ("/api/v1/deployments", {"name": "../etc", "replicas": 1, "config": {"plugin": "hello-http"}}),
    ],
)
def test_dot_dot_names_in_bodies_are_refused(
    volantd: RunningDaemon, hello_manifest: dict[str, Any], path: str, body: dict[str, Any]
) -> None:
    assert volantd.request("POST", "/api/v1/plugins", hello_manifest).status == 201
    before = _tree(volantd.state_dir)
    reply = volantd.request("POST", path, body)
    assert reply.status == 422 and reply.json()["error"]["details"][0]["field"] == "name"
    assert _tree(volantd.state_dir) == before


# --- volar -----------------------------------------------------------------


def _volar(daemon: RunningDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != "VOLANT_API_KEY"}
    return subprocess.run(
        [str(VOLAR), "--api", daemon.url, *args, "vms", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_volar_with_the_right_key(keyed: RunningDaemon) -> None:
    result = _volar(keyed, "--api-key", KEY)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("args", [("--api-key", "wrong"), ()], ids=["wrong-key", "no-key"])
def test_volar_without_the_right_key_prints_one_line(keyed: RunningDaemon, args: tuple[str, ...]) -> None:
    result = _volar(keyed, *args)
    assert result.returncode == UnauthorizedError.exit_code
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")
    assert "API key" in result.stderr and "(HTTP 401)" in result.stderr


def test_volar_from_a_refused_address() -> None:
    with running_daemon(api_allow_cidr="10.0.0.0/8") as daemon:
        result = _volar(daemon)
    assert result.returncode == ForbiddenError.exit_code
    assert "(HTTP 403)" in result.stderr
