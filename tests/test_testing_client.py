"""The test harness's client of an in-process volantd: a request that times out shows where the
daemon was stuck (the stacks of the process's threads), so a one-off hang in CI can be read."""

from __future__ import annotations

import socket
import threading

import pytest

from volant_core.cli.client import Unreachable
from volant_core.testing.daemon import StackDumpingClient


def test_a_timed_out_request_prints_every_threads_stack(capsys: pytest.CaptureFixture[str]) -> None:
    """A server that accepts and never answers: the client gives up, naming the request, with the
    stack of a thread blocked elsewhere in the process (here one waiting on an event)."""
    stuck = threading.Event()
    waiter = threading.Thread(target=stuck.wait, name="stuck-waiter", daemon=True)
    waiter.start()
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        client = StackDumpingClient(f"http://127.0.0.1:{port}", timeout=0.5)
        with pytest.raises(Unreachable, match="timed out"):
            client.send("GET", "/api/v1/vms")
    stuck.set()
    waiter.join()
    printed = capsys.readouterr().err
    assert "GET /api/v1/vms timed out" in printed
    stack_of_waiter = printed.split("--- stuck-waiter\n", 1)[1].split("\n--- ", 1)[0]
    assert "in wait" in stack_of_waiter


def test_a_refused_connection_prints_no_stacks(capsys: pytest.CaptureFixture[str]) -> None:
    """Only a timeout dumps stacks: a refused connection is reported as before, alone."""
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    with pytest.raises(Unreachable, match="refused"):
        StackDumpingClient(f"http://127.0.0.1:{port}", timeout=0.5).send("GET", "/healthz")
    assert capsys.readouterr().err == ""
