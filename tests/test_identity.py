"""Per-VM identities: MAC addresses, vsock CIDs, tap names and IP leases (the ``volant_allocate_ip`` hook)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from volant_core import builtins, hookimpl
from volant_core.netdev import IFNAME_MAX, tap_name
from volant_core.orchestrator.identity import mac_address
from volant_core.plugins import load_plugins
from volant_core.portmap import PortTable, PublishedPort
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.hostvm import host_process_daemon
from volant_core.testing.leased_ip import LeasedIpMode
from volant_core.testing.netns import network_namespace
from volant_core.vm import NAME_PATTERN

SUBNET = ipaddress.IPv4Network("10.77.0.0/29")  # hosts .1 to .6
HOST_IP = ipaddress.IPv4Address("10.77.0.3")
RESERVED = frozenset({"10.77.0.0", "10.77.0.7", "10.77.0.3"})


# ------------------------------------------------------------------ MAC addresses


@pytest.mark.parametrize("name", ["a", "web-1", "web1", "x" * 63])
def test_mac_is_a_deterministic_locally_administered_unicast_address(name: str) -> None:
    mac = mac_address(name)
    assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac)
    first = int(mac[:2], 16)
    assert first & 0b10 and not first & 0b01  # locally administered, unicast
    assert mac_address(name) == mac


def test_mac_differs_by_name_and_by_attempt() -> None:
    names = [f"vm-{i}" for i in range(2000)] + ["web-1", "web1"]
    assert len({mac_address(n) for n in names}) == len(names)
    assert len({mac_address("web-1", attempt) for attempt in range(10)}) == 10


# ---------------------------------------------------------------------- tap names


def test_tap_names_of_similar_names_differ() -> None:
    assert tap_name("web-1") != tap_name("web1")
    assert tap_name("a" * 62 + "b") != tap_name("a" * 62 + "c")  # differ only past any truncation


def test_tap_names_fit_ifnamsiz_and_are_deterministic() -> None:
    for name in ["a", "web-1", "x" * 63]:
        assert NAME_PATTERN.fullmatch(name)
        tap = tap_name(name)
        assert len(tap) <= IFNAME_MAX == 15
        assert re.fullmatch(r"[a-z0-9]+", tap), tap  # no '/', ':', '.' or spaces
        assert tap_name(name) == tap


def test_tap_names_do_not_collide() -> None:
    names = [f"vm-{i}" for i in range(20000)]
    assert len({tap_name(n) for n in names}) == len(names)


# ------------------------------------------------------------- IP allocation hook


def test_default_allocation_is_numeric_not_lexicographic() -> None:
    subnet = ipaddress.IPv4Network("10.1.0.0/24")
    taken = frozenset(f"10.1.0.{i}" for i in range(2, 11))
    reserved = frozenset({"10.1.0.0", "10.1.0.255", "10.1.0.1"})
    # Free: .11 to .254. As strings "10.1.0.100" sorts first; in numeric order .11 comes first.
    assert builtins.volant_allocate_ip("vm", subnet, taken, reserved) == "10.1.0.11"
    assert builtins.volant_allocate_ip("vm", subnet, taken - {"10.1.0.9"}, reserved) == "10.1.0.9"


def test_default_allocation_skips_reserved_and_reports_exhaustion() -> None:
    free = [str(a) for a in SUBNET.hosts() if str(a) not in RESERVED]
    assert free == ["10.77.0.1", "10.77.0.2", "10.77.0.4", "10.77.0.5", "10.77.0.6"]
    assert builtins.volant_allocate_ip("vm", SUBNET, frozenset(free[:2]), RESERVED) == "10.77.0.4"
    assert builtins.volant_allocate_ip("vm", SUBNET, frozenset(free), RESERVED) is None


class HighestFree:
    """An IPAM plugin: the highest free address instead of the lowest."""

    @hookimpl
    def volant_allocate_ip(
        self, subnet: ipaddress.IPv4Network, taken: frozenset[str], reserved: frozenset[str]
    ) -> str | None:
        """The highest address neither taken nor reserved."""
        free = [str(a) for a in subnet.hosts() if str(a) not in taken | reserved]
        return free[-1] if free else None


class Abstains:
    """An IPAM plugin that lets the next implementation decide."""

    @hookimpl
    def volant_allocate_ip(self, vm_name: str) -> str | None:
        """Always None."""
        return None


def test_a_plugin_answer_takes_precedence_over_the_core_default() -> None:
    plugins = load_plugins(disabled=(), extra=[("abstains", Abstains()), ("highest", HighestFree())])
    answer = plugins.calls.resolve(
        "volant_allocate_ip", vm_name="vm", subnet=SUBNET, taken=frozenset(), reserved=RESERVED
    )
    assert answer == "10.77.0.6"


def test_the_core_default_answers_when_plugins_abstain() -> None:
    plugins = load_plugins(disabled=(), extra=[("abstains", Abstains())])
    answer = plugins.calls.resolve(
        "volant_allocate_ip", vm_name="vm", subnet=SUBNET, taken=frozenset(), reserved=RESERVED
    )
    assert answer == "10.77.0.1"


# ------------------------------------------------------ through the API, with real VMs


def _create(api: RunningDaemon, name: str, **fields: Any) -> Any:
    return api.request("POST", "/api/v1/vms", {"name": name, "plugin": "hello-host", **fields})


def _ip(api: RunningDaemon, name: str) -> str | None:
    return api.daemon.store.vms.get_by_name(name).ip_address


def test_leases_follow_numeric_order_and_vms_without_ip_coexist(
    host_manifest: dict[str, Any], leased_ip_mode: Any
) -> None:
    settings = {"network_mode": leased_ip_mode.mode, "subnet": SUBNET, "host_ip": HOST_IP}
    with host_process_daemon(plugins=[leased_ip_mode.registration], **settings) as api:
        assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
        for name in "abcde":
            assert _create(api, name).status == 201
        assert [_ip(api, n) for n in "abcde"] == [
            "10.77.0.1",
            "10.77.0.2",
            "10.77.0.4",
            "10.77.0.5",
            "10.77.0.6",
        ]

        full = _create(api, "f")
        assert full.status == 409 and "no free IP address" in full.json()["error"]["message"]
        assert [vm.name for vm in api.daemon.store.vms.list()] == list("abcde")

        assert api.request("DELETE", "/api/v1/vms/b").status == 204
        assert _create(api, "g").status == 201
        assert _ip(api, "g") == "10.77.0.2"

        for name in ("n1", "n2", "n3"):
            assert _create(api, name, network_mode="none").status == 201
            assert _ip(api, name) is None
        leases = api.daemon.store.ips.leased()
        assert [lease.ip_address for lease in leases] == [
            "10.77.0.1",
            "10.77.0.2",
            "10.77.0.4",
            "10.77.0.5",
            "10.77.0.6",
        ]
        ids = {vm.id: vm.name for vm in api.daemon.store.vms.list()}
        assert sorted(ids[lease.vm_id] for lease in leases) == list("acdeg")


def test_an_ipam_plugin_decides_through_the_api(host_manifest: dict[str, Any], leased_ip_mode: Any) -> None:
    settings = {"network_mode": leased_ip_mode.mode, "subnet": SUBNET, "host_ip": HOST_IP}
    plugins = [leased_ip_mode.registration, ("highest", HighestFree())]
    with host_process_daemon(plugins=plugins, **settings) as api:
        api.request("POST", "/api/v1/plugins", host_manifest)
        assert _create(api, "a").status == 201 and _create(api, "b").status == 201
        assert (_ip(api, "a"), _ip(api, "b")) == ("10.77.0.6", "10.77.0.5")


def test_vsock_cids_start_at_three_are_unique_and_reused(host_manifest: dict[str, Any]) -> None:
    with host_process_daemon() as api:
        api.request("POST", "/api/v1/plugins", host_manifest)
        for name in ("a", "b", "c"):
            vm = _create(api, name).json()
            assert vm["mac_address"] == mac_address(name)
        cids = {vm.name: vm.vsock_cid for vm in api.daemon.store.vms.list()}
        assert cids == {"a": 3, "b": 4, "c": 5}
        assert api.request("DELETE", "/api/v1/vms/b").status == 204
        assert _create(api, "d").json()["vsock_cid"] == 4
        assert _create(api, "e").json()["vsock_cid"] == 6


#: ``hello-public``'s ``expose``: port 8000 on host port 18080, in any network mode.
PUBLIC_EXPOSE = [{"port": 8000, "host_port": 18080}]


@contextlib.contextmanager
def _publishing_daemon(
    host_manifest: dict[str, Any], *plugins: tuple[str, object], expose: list[dict[str, Any]] = PUBLIC_EXPOSE
) -> Iterator[RunningDaemon]:
    """volantd in a network namespace of the test's own, in a network mode that leases addresses
    and publishes ports (the real ``nft`` writes the rules), with ``hello-host`` installed and
    ``hello-public``: the same, with ``expose`` (by default port 8000 on host port 18080).
    ``plugins``: more to load.
    """
    leased_ip_mode = LeasedIpMode(publishes_ports=True)
    settings = {"network_mode": leased_ip_mode.mode, "subnet": SUBNET, "host_ip": HOST_IP}
    public = {**host_manifest, "name": "hello-public", "runtime": "hello-public"}
    public["expose"] = expose
    with network_namespace() as ns, ns.enter():
        with host_process_daemon(plugins=[leased_ip_mode.registration, *plugins], **settings) as api:
            assert api.request("POST", "/api/v1/plugins", host_manifest).status == 201
            assert api.request("POST", "/api/v1/plugins", public).status == 201
            yield api


@pytest.mark.parametrize(
    "expose",
    [
        pytest.param(PUBLIC_EXPOSE, id="any-mode"),
        # Every entry names a mode: the VM's own is published, the other one's is not.
        pytest.param(
            [
                {"port": 8000, "host_port": 18080, "mode": LeasedIpMode.mode},
                {"port": 9000, "host_port": 19090, "mode": "bridged"},
            ],
            id="its-mode-named",
        ),
    ],
)
def test_a_vms_published_ports_follow_it_through_stop_start_and_delete(
    host_manifest: dict[str, Any], expose: list[dict[str, Any]]
) -> None:
    """A VM with a leased address publishes its ``expose`` while it runs, and only then: stop and
    delete remove its rules. An entry naming the VM's network mode is published; one naming
    another mode is not.
    """
    table = PortTable()
    with _publishing_daemon(host_manifest, expose=expose) as api:
        assert _create(api, "web", plugin="hello-public").status == 201
        assert _create(api, "db").status == 201
        published = {"web": [PublishedPort("tcp", 18080, "10.77.0.1", 8000)]}
        assert table.published() == published

        assert api.request("POST", "/api/v1/vms/web/stop").json()["status"] == "stopped"
        assert table.published() == {}
        assert api.request("POST", "/api/v1/vms/web/start").status == 200
        api.wait_for_status("web", {"running"})
        assert table.published() == published

        assert api.request("DELETE", "/api/v1/vms/web").status == 204
        assert table.published() == {}
        assert api.request("DELETE", "/api/v1/vms/db").status == 204


def test_rules_that_cannot_be_removed_are_reported_on_the_core_and_the_vm_still_stops(
    host_manifest: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """nftables uninstalled while a VM publishes ports: its stop still stops it, and the core plugin
    reports what was left on the host; once ``nft`` is back, delete removes the rules.
    """
    table = PortTable()
    with _publishing_daemon(host_manifest) as api:
        assert _create(api, "web", plugin="hello-public").status == 201
        path = os.environ["PATH"]
        monkeypatch.setenv("PATH", "/nonexistent")

        assert api.request("POST", "/api/v1/vms/web/stop").json()["status"] == "stopped"
        monkeypatch.setenv("PATH", path)
        assert list(table.published()) == ["web"]
        info = {p["name"]: p for p in api.request("GET", "/api/v1/system/plugins").json()["plugins"]}
        assert info["core"]["status"] == "degraded"
        assert info["core"]["error"] == (
            "vm web: removing its published ports failed (publishing ports needs nftables: 'nft' was "
            "not found (install the nftables package)); what it held on the host may remain"
        )

        assert api.request("DELETE", "/api/v1/vms/web").status == 204
        assert table.published() == {}


class BreaksTheLaunch:
    """A plugin whose ``volant_prepare_launch`` answers the wrong type: every launch fails once its
    network and its ports are set up.
    """

    @hookimpl
    def volant_prepare_launch(self) -> str:
        """Not :class:`~volant_core.descriptors.LaunchAdditions`."""
        return "no additions"


def test_a_launch_that_fails_after_publishing_removes_the_rules_again(host_manifest: dict[str, Any]) -> None:
    table = PortTable()
    with _publishing_daemon(host_manifest, ("breaks-the-launch", BreaksTheLaunch())) as api:
        answer = _create(api, "web", plugin="hello-public")
        assert answer.status == 500
        assert answer.json()["error"]["message"].startswith("plugin breaks-the-launch: volant_prepare_launch")
        assert table.published() == {}
        info = {p["name"]: p for p in api.request("GET", "/api/v1/system/plugins").json()["plugins"]}
        assert info["core"]["status"] == "loaded"  # the rules were undone without a failure to report


def test_a_launch_whose_host_port_a_socket_holds_is_refused_naming_it_and_leaves_nothing(
    host_manifest: dict[str, Any],
) -> None:
    """A socket on the host listening on a VM's published port: its create is refused (409, the port
    named), no rule is written, the VM and its lease are gone and no release failure is reported.
    """
    table = PortTable()
    with _publishing_daemon(host_manifest) as api, socket.create_server(("0.0.0.0", 18080)):
        answer = _create(api, "web", plugin="hello-public")
        assert answer.status == 409
        error = answer.json()["error"]
        assert [detail["field"] for detail in error["details"]] == ["expose"]
        assert error["message"] == (
            "expose: host port 18080/tcp is in use on the host (a socket is bound to it); "
            "choose another host_port or stop what holds it"
        )
        assert table.published() == {}
        assert api.request("GET", "/api/v1/vms/web").status == 404
        assert api.daemon.store.ips.leased() == []
        info = {p["name"]: p for p in api.request("GET", "/api/v1/system/plugins").json()["plugins"]}
        assert info["core"]["status"] == "loaded"  # the network was undone without a failure to report
