"""The network-namespace fixture of volant_core.testing.netns, on real namespaces, links and processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from pyroute2 import IPRoute, netns

from volant_core.testing.daemon import running_daemon
from volant_core.testing.netns import NamespaceLeak, NetworkNamespace, network_namespace
from volant_core.testing.processes import IDLE_PROGRAM, pid_alive
from volant_core.testing.waiting import eventually

#: Run by a child: the names of the network interfaces it sees, as JSON.
LIST_INTERFACES = "import json, socket; print(json.dumps(sorted(n for _, n in socket.if_nameindex())))"
#: A child that waits until killed (the namespace's cleanup sends SIGKILL, which nothing can ignore).
SLEEPER = IDLE_PROGRAM
#: A child that starts :data:`SLEEPER` in a session of its own, prints its pid and exits, as daemons do.
DAEMONIZER = (
    "import subprocess, sys; "
    f"print(subprocess.Popen([sys.executable, '-c', {SLEEPER!r}], start_new_session=True, "
    "stdout=subprocess.DEVNULL).pid)"
)


@pytest.fixture(autouse=True)
def backstop() -> Iterator[contextlib.ExitStack]:
    """Undoes what a test started (``backstop.callback(reap, child)``) after the code under test had
    its turn, should it have failed to: set up first, it is torn down after ``volant_netns``.
    """
    with contextlib.ExitStack() as stack:
        yield stack


def remove_if_left(name: str) -> None:
    """Delete the namespace ``name`` if it still exists."""
    if name in netns.listnetns():
        netns.remove(name)


def kill_if_alive(pid: int) -> None:
    """SIGKILL ``pid`` if it still runs."""
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def reap(child: subprocess.Popen[Any]) -> None:
    """Kill ``child`` if it still runs, and wait for it."""
    child.kill()
    child.wait(timeout=30)


def unique_ifname(prefix: str) -> str:
    """A link name no other test uses (at most 15 characters)."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def host_links() -> set[str]:
    """Names of the links of the test run's own network namespace."""
    with IPRoute() as ipr:
        return {link.get("ifname") for link in ipr.get_links()}


def test_links_made_inside_are_invisible_from_the_host(
    volant_netns: NetworkNamespace, backstop: contextlib.ExitStack
) -> None:
    """A bridge and a veth pair made in the namespace exist there (lo up) and not on the host."""
    backstop.callback(remove_if_left, volant_netns.name)
    bridge, veth, peer = unique_ifname("vbr"), unique_ifname("vve"), unique_ifname("vvp")
    ipr = volant_netns.ipr
    ipr.link("add", ifname=bridge, kind="bridge")
    ipr.link("add", ifname=veth, kind="veth", peer=peer)
    (bridge_index,) = ipr.link_lookup(ifname=bridge)
    ipr.link("set", ifname=veth, master=bridge_index)

    inside = {link.get("ifname"): link for link in ipr.get_links()}
    assert set(inside) == {"lo", bridge, veth, peer}
    assert inside["lo"].get("state") == "up"
    assert inside[veth].get("master") == bridge_index
    assert not {bridge, veth, peer} & host_links()

    ipr.link("del", ifname=veth)  # takes its peer along
    ipr.link("del", ifname=bridge)


def test_popen_child_sees_only_the_namespace_links(
    volant_netns: NetworkNamespace, backstop: contextlib.ExitStack
) -> None:
    """A child started with ``popen`` lists lo and the namespace's link; the host has others."""
    backstop.callback(remove_if_left, volant_netns.name)
    bridge = unique_ifname("vbr")
    volant_netns.ipr.link("add", ifname=bridge, kind="bridge")
    child = volant_netns.popen([sys.executable, "-c", LIST_INTERFACES], stdout=subprocess.PIPE, text=True)
    output, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    assert json.loads(output) == sorted(["lo", bridge])
    assert bridge not in host_links()
    volant_netns.ipr.link("del", ifname=bridge)


def test_enter_moves_only_the_current_thread_and_back(
    volant_netns: NetworkNamespace, backstop: contextlib.ExitStack
) -> None:
    """Inside ``enter()`` the thread sees the namespace's links; after it, the host's again."""
    backstop.callback(remove_if_left, volant_netns.name)
    with volant_netns.enter():
        assert [name for _, name in socket.if_nameindex()] == ["lo"]
    assert {name for _, name in socket.if_nameindex()} == host_links() != {"lo"}


def test_daemon_started_inside_answers_there_and_not_on_the_host(
    volant_netns: NetworkNamespace, backstop: contextlib.ExitStack
) -> None:
    """volantd started inside ``enter()`` answers on 127.0.0.1 inside; the host's loopback has
    nothing on that port. Its threads leave with it, so the namespace closes without a leak.
    """
    backstop.callback(remove_if_left, volant_netns.name)
    with contextlib.ExitStack() as stack:
        with volant_netns.enter():
            daemon = stack.enter_context(running_daemon())
            assert daemon.request("GET", "/healthz").json() == {"status": "ok"}
        port = urlsplit(daemon.url).port
        assert port is not None
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=10).close()


def test_leaked_process_fails_and_is_killed(backstop: contextlib.ExitStack) -> None:
    """A child left running inside is named in the error, killed, and the namespace is deleted."""
    with pytest.raises(NamespaceLeak) as leaked:
        with network_namespace() as namespace:
            backstop.callback(remove_if_left, namespace.name)
            child = namespace.popen([sys.executable, "-c", SLEEPER])
            backstop.callback(reap, child)
    assert leaked.value.leaks == [f"process {child.pid} ({sys.executable} -c {SLEEPER})"]
    assert child.wait(timeout=30) == -signal.SIGKILL
    assert not pid_alive(child.pid)
    assert namespace.name not in netns.listnetns()


def test_a_daemonized_process_left_inside_is_found_and_killed(backstop: contextlib.ExitStack) -> None:
    """A process that left its parent (no Popen of the test knows it) is found by its namespace."""
    with pytest.raises(NamespaceLeak) as leaked:
        with network_namespace() as namespace:
            backstop.callback(remove_if_left, namespace.name)
            parent = namespace.popen([sys.executable, "-c", DAEMONIZER], stdout=subprocess.PIPE, text=True)
            output, _ = parent.communicate(timeout=60)
            daemon = int(output)
            backstop.callback(kill_if_alive, daemon)
    assert leaked.value.leaks == [f"process {daemon} ({sys.executable} -c {SLEEPER})"]
    eventually(lambda: not pid_alive(daemon), f"process {daemon} to be gone")


def test_leaked_link_fails_and_the_namespace_is_deleted(backstop: contextlib.ExitStack) -> None:
    """A bridge left behind is named in the error; the namespace (and the bridge with it) is gone."""
    bridge = unique_ifname("vbr")
    with pytest.raises(NamespaceLeak) as leaked:
        with network_namespace() as namespace:
            backstop.callback(remove_if_left, namespace.name)
            namespace.ipr.link("add", ifname=bridge, kind="bridge")
    assert leaked.value.leaks == [f"link {bridge}"]
    assert namespace.name not in netns.listnetns()
    assert bridge not in host_links()


def test_a_thread_left_inside_fails(backstop: contextlib.ExitStack) -> None:
    """A thread of the test process started inside and still running at exit is named in the error."""
    release = threading.Event()
    backstop.callback(release.set)
    with pytest.raises(NamespaceLeak) as leaked:
        with network_namespace(settle_timeout=0.5) as namespace:
            backstop.callback(remove_if_left, namespace.name)
            with namespace.enter():
                threading.Thread(target=release.wait, name="volant-test-leaked", daemon=True).start()
    assert leaked.value.leaks == ["thread 'volant-test-leaked' of this process"]
    assert namespace.name not in netns.listnetns()


def test_a_failing_test_keeps_its_own_error_and_still_cleans_up(backstop: contextlib.ExitStack) -> None:
    """When the block raises, that error propagates; the leaked child is killed, the namespace deleted."""
    with pytest.raises(RuntimeError, match="the test itself failed"):
        with network_namespace() as namespace:
            backstop.callback(remove_if_left, namespace.name)
            child = namespace.popen([sys.executable, "-c", SLEEPER])
            backstop.callback(reap, child)
            raise RuntimeError("the test itself failed")
    assert child.wait(timeout=30) == -signal.SIGKILL
    assert namespace.name not in netns.listnetns()


def test_no_namespace_remains_after_a_clean_run(backstop: contextlib.ExitStack) -> None:
    """A namespace exists while in use and not afterwards."""
    with network_namespace() as namespace:
        backstop.callback(remove_if_left, namespace.name)
        assert namespace.name in netns.listnetns()
    assert namespace.name not in netns.listnetns()
