"""The real dnsmasq, run by the plugin on a bridge in a namespace of the test's own, answering a real
DHCP client (busybox udhcpc) plugged into that bridge from a second namespace.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from volant_network_dhcp.dnsmasq import DnsmasqServer, Host

from volant_core.sdk import PluginError
from volant_core.testing.processes import pid_alive
from volant_core.testing.waiting import eventually

MAC_A, MAC_B, STRANGER = "02:aa:00:00:00:0a", "02:aa:00:00:00:0b", "02:aa:00:00:00:ff"

NewServer = Callable[..., DnsmasqServer]


def dnsmasq_pids(lan) -> list[int]:
    """The dnsmasq processes running in the bridge's namespace."""
    return [pid for pid, argv in lan.server_ns.processes().items() if Path(argv.split()[0]).name == "dnsmasq"]


def test_serves_each_known_mac_its_static_address_and_strangers_nothing(lan, new_server: NewServer) -> None:
    server = new_server()
    server.add("a", Host(MAC_A, "10.77.0.5"))
    server.add("b", Host(MAC_B, "10.77.0.9"))
    assert lan.ask(MAC_A) == "10.77.0.5/24 10.77.0.1"
    assert lan.ask(MAC_B) == "10.77.0.9/24 10.77.0.1"
    assert lan.ask(STRANGER, attempts=2) is None
    assert len(dnsmasq_pids(lan)) == 1


def test_an_address_given_back_goes_to_the_next_vm(lan, new_server: NewServer) -> None:
    server = new_server()
    server.add("keep", Host(MAC_B, "10.77.0.9"))
    server.add("old", Host(MAC_A, "10.77.0.5"))
    assert lan.ask(MAC_A) == "10.77.0.5/24 10.77.0.1"
    server.remove("old")
    assert lan.ask(MAC_A, attempts=2) is None
    # The IPAM leases the freed address to a new VM: dnsmasq must not keep it for the old MAC.
    server.add("new", Host(STRANGER, "10.77.0.5"))
    assert lan.ask(STRANGER) == "10.77.0.5/24 10.77.0.1"
    assert lan.ask(MAC_B) == "10.77.0.9/24 10.77.0.1"


def test_a_killed_dnsmasq_is_started_again(lan, new_server: NewServer) -> None:
    server = new_server()
    server.add("a", Host(MAC_A, "10.77.0.5"))
    first = server.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    eventually(lambda: server.pid not in (None, first), "dnsmasq running again", timeout=15)
    assert lan.ask(MAC_A) == "10.77.0.5/24 10.77.0.1"
    assert dnsmasq_pids(lan) == [server.pid]


def test_a_new_daemon_adopts_the_running_dnsmasq(lan, new_server: NewServer) -> None:
    before = new_server()
    before.add("a", Host(MAC_A, "10.77.0.5"))
    pid = before.pid
    before.release()  # volantd stops: dnsmasq keeps serving
    assert lan.ask(MAC_A) == "10.77.0.5/24 10.77.0.1"

    after = new_server()
    after.sync(after.hosts())
    assert after.pid == pid and dnsmasq_pids(lan) == [pid]
    # The adopted process is supervised like one of our own.
    os.kill(pid, signal.SIGKILL)
    eventually(lambda: after.pid not in (None, pid), "dnsmasq running again", timeout=15)
    # A VM more restarts the adopted dnsmasq with it: still exactly one.
    again = new_server()
    after.release()
    again.add("b", Host(MAC_B, "10.77.0.9"))
    assert dnsmasq_pids(lan) == [again.pid]
    assert lan.ask(MAC_B) == "10.77.0.9/24 10.77.0.1"
    assert lan.ask(MAC_A) == "10.77.0.5/24 10.77.0.1"

    again.remove("a")
    again.remove("b")
    assert dnsmasq_pids(lan) == []
    assert not again.directory.exists()


def test_a_pid_file_naming_another_process_is_not_adopted(lan, new_server: NewServer) -> None:
    server = new_server()
    server.add("a", Host(MAC_A, "10.77.0.5"))
    server.stop()
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        server.pid_file.write_text(f"{stranger.pid}\n")
        again = new_server()
        again.sync(again.hosts())
        assert again.pid not in (None, stranger.pid) and pid_alive(stranger.pid)
        assert lan.ask(MAC_A) == "10.77.0.5/24 10.77.0.1"
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.parametrize("problem", ["missing binary", "missing bridge"])
def test_a_server_that_cannot_start_leaves_nothing(lan, new_server: NewServer, problem: str) -> None:
    if problem == "missing binary":
        server, expected = new_server("/nonexistent/dnsmasq"), "apt-get install dnsmasq-base"
    else:
        server, expected = new_server(), "did not start"
        server.config = type(server.config)("nobr0", server.config.network, server.config.router)
    with pytest.raises(PluginError, match=expected):
        server.add("a", Host(MAC_A, "10.77.0.5"))
    assert server.hosts() == {} and not server.directory.exists()
    assert dnsmasq_pids(lan) == []
