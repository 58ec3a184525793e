"""HangupWatch on a real socket pair: the server's end is watched, the test plays the client."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from volant_core.agent.hangup import HangupWatch


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """``(server_end, client_end)`` of a connected stream socket pair."""
    server_end, client_end = socket.socketpair()
    with server_end, client_end:
        yield server_end, client_end


def test_a_client_closing_its_end_is_noticed(pair: tuple[socket.socket, socket.socket]) -> None:
    server_end, client_end = pair
    hung_up = threading.Event()
    with HangupWatch.on_socket(server_end, hung_up.set):
        client_end.close()
        assert hung_up.wait(30)


def test_no_hangup_while_the_client_stays(pair: tuple[socket.socket, socket.socket]) -> None:
    server_end, client_end = pair
    calls: list[str] = []
    with HangupWatch.on_socket(server_end, lambda: calls.append("hangup")):
        pass  # the watch ends with the client still connected
    client_end.close()
    assert calls == []


def test_a_client_sending_bytes_is_not_a_hangup(pair: tuple[socket.socket, socket.socket]) -> None:
    server_end, client_end = pair
    hung_up = threading.Event()
    with HangupWatch.on_socket(server_end, hung_up.set):
        client_end.sendall(b"more")
        client_end.close()  # its end comes after bytes nobody read: the watch stopped at the bytes
        assert not hung_up.wait(1.0)
    assert server_end.recv(4) == b"more"  # only peeked at: the bytes are still there
