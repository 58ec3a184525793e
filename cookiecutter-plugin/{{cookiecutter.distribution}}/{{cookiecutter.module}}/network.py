"""The network mode: what the host gives a VM's network before launch, and takes back after.

As generated, the mode gives the VM no NIC and records each attachment in a file of the plugin's
state directory (what a real mode does with taps, bridge ports and leases: create them in
``attach``, remove them in ``detach``). volantd calls ``detach`` on every release path (stop,
crash, a failed launch, delete), also for a VM whose ``attach`` never ran: it must be idempotent.
"""

from __future__ import annotations

from pathlib import Path

from volant_core.sdk import NetworkAttachment, PluginContext, VMView


class Network:
    """Attaches and detaches VMs (implements volant-core's ``NetworkMode`` protocol)."""

    def __init__(self, context: PluginContext) -> None:
        """Keep this mode's records under the plugin's own state directory."""
        self._records = context.state_dir / "attached"

    def attach(self, vm: VMView) -> NetworkAttachment:
        """Create what ``vm`` needs on the host; return its NICs and guest kernel arguments."""
        self._records.mkdir(parents=True, exist_ok=True)
        self._record(vm).write_text(vm.mac_address + "\n")
        return NetworkAttachment(nics=(), kernel_args=())

    def detach(self, vm: VMView) -> None:
        """Remove what :meth:`attach` created for ``vm``; nothing to do when it never ran."""
        self._record(vm).unlink(missing_ok=True)

    def attached(self) -> list[str]:
        """The names of the VMs attached now."""
        return sorted(path.name for path in self._records.glob("*")) if self._records.is_dir() else []

    def _record(self, vm: VMView) -> Path:
        return self._records / vm.name
