"""A VM's ``expose``: which host ports it publishes, the checks that keep each host port to one
owner, and publishing them while the VM runs (see docs/adr/0021-port-publishing.md).

A host port is refused (409, naming it) when:

* another VM's configuration publishes it (checked when a configuration is stored: create, PATCH,
  rollback);
* another VM's rules publish it, or a socket on the host listens on it (checked at each launch,
  before any rule is written).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from volant_core.errors import ConflictError, ValidationError
from volant_core.orchestrator.backends import Backends
from volant_core.orchestrator.vmconfig import VMConfig
from volant_core.portmap import PortTable, PublishedPort, listening
from volant_core.store import Store
from volant_core.vm import VMView

log = logging.getLogger(__name__)

#: A host port: its protocol and number.
HostPort = tuple[str, int]


def host_ports(config: VMConfig, network_mode: str) -> dict[HostPort, int]:
    """The host ports ``config`` publishes in ``network_mode``, each with its index in ``expose``."""
    claimed: dict[HostPort, int] = {}
    for index, entry in enumerate(config.expose):
        if entry.mode in ("", network_mode):
            claimed.setdefault((entry.protocol, entry.host_port or entry.port), index)
    return claimed


def published_ports(config: VMConfig, network_mode: str, ip_address: str | None) -> tuple[PublishedPort, ...]:
    """The ports a VM booted with ``config`` in ``network_mode`` at ``ip_address`` publishes."""
    if ip_address is None:
        return ()
    return tuple(
        PublishedPort(e.protocol, e.host_port or e.port, ip_address, e.port, e.name)
        for e in config.expose
        if e.mode in ("", network_mode)
    )


def check_expose(name: str, config: VMConfig, store: Store, backends: Backends) -> None:
    """Refuse ``config`` for VM ``name`` when it publishes one host port twice (422) or one that
    another VM's configuration publishes (409), naming the port.
    """
    mode = backends.network_of(config).mode
    claimed: dict[HostPort, int] = {}
    for index, entry in enumerate(config.expose):
        port: HostPort = (entry.protocol, entry.host_port or entry.port)
        if entry.mode not in ("", mode):
            continue
        if port in claimed:
            raise ValidationError(
                f"expose[{index}].host_port: host port {_show(port)} is published twice; "
                "give each mapping its own host_port",
                field=f"expose[{index}].host_port",
            )
        claimed[port] = index
    if not claimed:
        return
    others = [record for record in store.vms.list() if record.name != name]
    currents = store.configs.current_many([record.id for record in others])
    for record in others:
        if record.id not in currents:
            continue  # deleted meanwhile
        other = VMConfig.model_validate(currents[record.id].config)
        theirs = host_ports(other, backends.network_of(other).mode)
        for port, index in claimed.items():
            if port in theirs:
                raise ConflictError(
                    f"expose[{index}].host_port: host port {_show(port)} is published by vm "
                    f"{record.name!r} already; choose another host_port (or change that VM's expose)",
                    field=f"expose[{index}].host_port",
                )


class PortPublisher:
    """Writes and removes the rules of the ports VMs publish (:class:`~volant_core.portmap.PortTable`)."""

    def __init__(self, table: PortTable) -> None:
        """Publish through ``table``."""
        self._table = table
        self._lock = threading.Lock()  # two launches must not both find a host port free

    def publish(self, view: VMView, config: VMConfig) -> None:
        """Publish what ``config`` exposes for the VM of ``view``; :class:`ConflictError` naming a host
        port another VM's rules or a host socket hold (no rule is written then).
        """
        ports = published_ports(config, view.network_mode, view.ip_address)
        if ports:
            with self._lock:
                self._publish(view.name, ports)

    def _publish(self, vm: str, ports: tuple[PublishedPort, ...]) -> None:
        """Check ``ports`` are free of other VMs and host sockets, then publish them for ``vm``."""
        taken = {
            (str(port.protocol), port.host_port): owner
            for owner, held in self._table.published().items()
            if owner != vm
            for port in held
        }
        for port in ports:
            key = (port.protocol, port.host_port)
            if key in taken:
                raise ConflictError(
                    f"expose: host port {_show(key)} is published by vm {taken[key]!r}; "
                    "choose another host_port or stop that VM",
                    field="expose",
                )
            if listening(port.protocol, port.host_port):
                raise ConflictError(
                    f"expose: host port {_show(key)} is in use on the host (a socket is bound to it); "
                    "choose another host_port or stop what holds it",
                    field="expose",
                )
        self._table.publish(vm, ports)

    def unpublish(self, view: VMView) -> None:
        """Remove every rule of the VM of ``view`` (none is fine)."""
        self._table.unpublish([view.name])

    def reconcile(self, running: Iterable[tuple[VMView, VMConfig]]) -> None:
        """After a daemon start: the rules of the ``running`` VMs (each with the configuration it booted
        with) written again, those of every other VM removed.
        """
        wanted = {
            view.name: published_ports(config, view.network_mode, view.ip_address) for view, config in running
        }
        wanted = {name: ports for name, ports in wanted.items() if ports}
        stale = sorted(set(self._table.published()) - wanted.keys())
        if stale:
            log.info("removing the published ports of VMs no longer running: %s", ", ".join(stale))
        self._table.unpublish(stale)
        for name, ports in wanted.items():
            self._table.publish(name, ports)


def _show(port: HostPort) -> str:
    """A host port as people write it, e.g. ``8080/tcp``."""
    return f"{port[1]}/{port[0]}"
