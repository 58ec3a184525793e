"""kestrel's HTTP/1.1 core over a real socket pair."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from volant_core.agent.httpio import Handler, Request, Response, serve_stream

Seen = list[Request]


def handler(seen: Seen) -> Handler:
    """Echo the request as JSON; ``/boom`` raises."""

    def handle(request: Request) -> Response:
        seen.append(request)
        if request.path == "/boom":
            raise RuntimeError("boom")
        return Response.json(
            200, {"method": request.method, "path": request.path, "body": request.body.decode()}
        )

    return handle


@pytest.fixture
def served() -> Iterator[tuple[socket.socket, Seen, threading.Thread]]:
    """A client socket whose peer is served by ``serve_stream`` in a thread."""
    client, server = socket.socketpair()
    client.settimeout(10)
    seen: Seen = []
    thread = threading.Thread(target=serve_stream, args=(server, handler(seen)), daemon=True)
    thread.start()
    try:
        yield client, seen, thread
    finally:
        client.close()
        thread.join(10)
        server.close()


def read_response(client: socket.socket, method: str = "GET") -> http.client.HTTPResponse:
    """One response read from ``client``."""
    response = http.client.HTTPResponse(client, method=method)
    response.begin()
    return response


def test_keep_alive_serves_several_requests(served: tuple[socket.socket, Seen, threading.Thread]) -> None:
    client, seen, _ = served
    for path in ("/a", "/b"):
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        response = read_response(client)
        assert response.status == 200 and response.getheader("Connection") == "keep-alive"
        assert json.loads(response.read())["path"] == path
    assert [r.path for r in seen] == ["/a", "/b"]


def test_content_length_and_chunked_bodies(served: tuple[socket.socket, Seen, threading.Thread]) -> None:
    client, _, _ = served
    client.sendall(b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
    assert json.loads(read_response(client).read())["body"] == "hello"
    client.sendall(
        b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    assert json.loads(read_response(client).read()) == {"method": "PUT", "path": "/c", "body": "abcde"}


def test_http10_closes_and_head_has_no_body(served: tuple[socket.socket, Seen, threading.Thread]) -> None:
    client, _, thread = served
    client.sendall(b"HEAD /h HTTP/1.1\r\n\r\n")
    head = read_response(client, "HEAD")
    assert int(head.getheader("Content-Length") or 0) > 0 and head.read() == b""
    client.sendall(b"GET /old HTTP/1.0\r\n\r\n")
    response = read_response(client)
    assert response.getheader("Connection") == "close"
    response.read()
    thread.join(10)
    assert not thread.is_alive()


def test_leftover_head_of_an_abandoned_request_is_skipped(
    served: tuple[socket.socket, Seen, threading.Thread],
) -> None:
    client, seen, _ = served
    client.sendall(b"POST /x HTTP/1.1\r\nHost: ab\r\n" + b"GET /second HTTP/1.1\r\nX: 1\r\n\r\n")
    assert read_response(client).status == 200
    assert [(r.path, r.headers) for r in seen] == [("/second", [("X", "1")])]


def test_a_line_merely_ending_in_a_request_line_is_no_request_line(
    served: tuple[socket.socket, Seen, threading.Thread],
) -> None:
    client, seen, _ = served
    client.sendall(b"GET /v1/hea" + b"GET /v1/health HTTP/1.1\r\n\r\n")
    assert read_response(client).status == 400
    assert seen == []


def test_malformed_request_gets_400_and_close(served: tuple[socket.socket, Seen, threading.Thread]) -> None:
    client, seen, _ = served
    client.sendall(b"NONSENSE\r\n\r\n")
    response = read_response(client)
    assert response.status == 400 and response.getheader("Connection") == "close"
    assert json.loads(response.read())["error"]["code"] == "bad_request"
    assert seen == []


def test_handler_failure_is_a_json_500(served: tuple[socket.socket, Seen, threading.Thread]) -> None:
    client, _, _ = served
    client.sendall(b"GET /boom HTTP/1.1\r\n\r\n")
    response = read_response(client)
    assert response.status == 500
    assert json.loads(response.read())["error"]["code"] == "internal"
