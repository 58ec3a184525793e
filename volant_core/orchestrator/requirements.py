"""Nothing accepted and ignored: every field of a VM configuration is used by the core or by an
installed plugin able to honour it, or the configuration is refused naming the field.

What each field needs:

* ``rootfs``, ``disks``, ``cloud_init`` (its seed is a disk): a hypervisor with the ``disks``
  capability; ``disks[].target`` becomes the disk's serial number in the guest;
* ``devices``: a device driver for PCI devices (``volant-vfio``) and a hypervisor with
  ``pci-passthrough``;
* ``cloud_init``: the seed builder its ``seed_mode`` names (``volant-cloudinit``); documents
  carry their ``content`` (``volar`` reads files given as ``path``; the daemon never does), which
  kestrel must be able to apply as written (:mod:`volant_core.seedplan`);
* ``expose``: a network mode that publishes ports;
* ``network.subnet`` / ``gateway`` / ``auto_assign``: a network mode that honours each;
* the network mode's ``requires``: capabilities of the hypervisor;
* ``api``: nothing in this Volant uses it (the host reaches kestrel over its agent channel), so
  it is refused.
"""

from __future__ import annotations

import re

from volant_core.descriptors import NETWORK_OPTIONS
from volant_core.errors import NotFoundError, ValidationError
from volant_core.launch import Capability
from volant_core.manifest import CloudInit, CloudInitDoc, Devices
from volant_core.orchestrator.backends import Backends
from volant_core.orchestrator.vmconfig import VMConfig
from volant_core.registry import install_hint
from volant_core.seedplan import SeedPlanError, seed_plan

#: A disk ``target``: the serial number the guest sees (virtio-blk keeps 20 bytes).
DISK_SERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}")


def devices_of(config: VMConfig) -> Devices | None:
    """The passthrough devices a VM of ``config`` gets (its own, else its manifest's), or None."""
    devices = config.devices if config.devices is not None else config.manifest.devices
    return devices if devices is not None and (devices.pci_passthrough or devices.allowlist) else None


#: The documents of a cloud-init seed, each merged on its own (see :func:`cloud_init_of`).
CLOUD_INIT_DOCUMENTS = ("user_data", "meta_data", "network_config")


def cloud_init_of(config: VMConfig) -> CloudInit | None:
    """The cloud-init seed a VM of ``config`` gets, or None: the manifest's merged with the VM's own
    per document. A document the VM gives replaces the manifest's document of that name whole (two
    YAML documents are never merged key by key); a document it omits is the manifest's. The VM's
    ``seed_mode`` and ``datasource`` apply when it has a ``cloud_init`` of its own (ADR 0038).
    """
    own, base = config.cloud_init, config.manifest.cloud_init
    if own is None or base is None:
        return own if own is not None else base
    inherited = {name: getattr(base, name) for name in CLOUD_INIT_DOCUMENTS if getattr(own, name) is None}
    return own.model_copy(update=inherited)


def check_requirements(config: VMConfig, backends: Backends) -> None:
    """Refuse ``config`` (resolved) when a field it sets has nothing installed to honour it.

    Raises :class:`ValidationError` (422) naming the field, and the package that would handle it
    when a known one does; unknown hypervisor or network mode names are 404s naming the field.
    """
    hypervisor_name = backends.hypervisor_of(config)
    hypervisor = backends.hypervisor(hypervisor_name, field="hypervisor")

    def need(capability: Capability, field: str, what: str) -> None:
        if capability not in hypervisor.capabilities:
            offered = ", ".join(sorted(hypervisor.capabilities)) or "none"
            raise ValidationError(
                f"{field}: {what} needs the hypervisor capability {capability.value!r}, which hypervisor "
                f"{hypervisor_name!r} lacks (it offers: {offered}); choose another hypervisor or drop it",
                field=field,
            )

    network = backends.network_of(config)
    mode = backends.mode(network.mode, field="network.mode")
    for capability in sorted(mode.requires):
        need(Capability(capability), "network.mode", f"network mode {mode.name!r}")
    for option in sorted(NETWORK_OPTIONS):
        if getattr(network, option) is not None and option not in mode.honours:
            raise ValidationError(
                f"network.{option}: network mode {mode.name!r} does not use it; remove it "
                "(addresses come from the daemon's pool, VOLANT_SUBNET)",
                field=f"network.{option}",
            )
    if config.expose and not mode.publishes_ports:
        raise ValidationError(
            f"expose: network mode {mode.name!r} does not publish ports; use one that does, e.g. bridged"
            f"{install_hint('network mode', 'bridged')}, or remove expose",
            field="expose",
        )
    if config.api.host is not None or config.api.port is not None:
        raise ValidationError(
            "api: not used by this Volant (the host reaches kestrel over the VM's agent channel); remove it",
            field="api",
        )
    manifest = config.boot_manifest()
    if manifest.rootfs is not None:
        need(Capability.DISKS, "rootfs", "a root filesystem image")
    for index, disk in enumerate(manifest.disks):
        need(Capability.DISKS, f"manifest.disks[{index}]", f"disk {disk.name!r}")
        if disk.target is not None and not DISK_SERIAL.fullmatch(disk.target):
            raise ValidationError(
                f"manifest.disks[{index}].target: {disk.target!r} must be 1-20 letters, digits, '.', '_' "
                "or '-' (the guest sees it as the disk's serial, /dev/disk/by-id/virtio-<target>)",
                field=f"manifest.disks[{index}].target",
            )
    if devices_of(config) is not None:
        backends.device_driver("pci", field="devices.pci_passthrough")
        need(Capability.PCI_PASSTHROUGH, "devices.pci_passthrough", "passing PCI devices through")
    cloud_init = cloud_init_of(config)
    if cloud_init is not None:
        for name in CLOUD_INIT_DOCUMENTS:
            document = getattr(cloud_init, name)
            if document is not None and document.path is not None:
                raise ValidationError(
                    f"cloud_init.{name}.path: the API takes the document itself as content "
                    "(volar reads a file given as path and sends its content)",
                    field=f"cloud_init.{name}.path",
                )
        try:
            backends.seed_builder(cloud_init.seed_mode, field="cloud_init.seed_mode")
        except NotFoundError as err:
            raise ValidationError(
                f"cloud_init.seed_mode: {err.message}", field="cloud_init.seed_mode"
            ) from None
        need(Capability.DISKS, "cloud_init", "a cloud-init seed disk")
        check_seed_plan(cloud_init)


def _content(document: CloudInitDoc | None) -> str | None:
    return document.content if document is not None else None


def check_seed_plan(cloud_init: CloudInit) -> None:
    """Refuse documents kestrel could not apply as written (:mod:`volant_core.seedplan`): malformed
    YAML, or a malformed value of a key kestrel applies. 422 naming the document.
    """
    try:
        seed_plan(
            _content(cloud_init.user_data) or "",
            _content(cloud_init.meta_data) or "",
            _content(cloud_init.network_config),
        )
    except SeedPlanError as err:
        field = f"cloud_init.{err.document}.content"
        raise ValidationError(f"{field}: {err.message}", field=field) from None
