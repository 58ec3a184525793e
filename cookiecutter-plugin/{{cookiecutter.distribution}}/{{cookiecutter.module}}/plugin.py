"""The hooks volantd calls: the plugin registers its {{ cookiecutter.kind }} ``{{ cookiecutter.plugin_name }}``.

volantd loads this module through the ``volant.plugins`` entry point (``pyproject.toml``). Every
hook and its arguments are in volant-core's hook reference (``docs/plugins/hooks.md``).
"""

from __future__ import annotations

{% if cookiecutter.kind == "hypervisor" -%}
from volant_core.sdk import Capability, HypervisorDescriptor, hookimpl

from {{ cookiecutter.module }}.vmm import VmmLauncher

#: The hypervisor's name: ``volantd --hypervisor {{ cookiecutter.plugin_name }}``.
NAME = "{{ cookiecutter.plugin_name }}"


@hookimpl
def volant_hypervisors() -> list[HypervisorDescriptor]:
    """Register the backend; ``capabilities`` promise only what :class:`VmmLauncher` does."""
    return [
        HypervisorDescriptor(
            NAME,
            VmmLauncher,
            description="{{ cookiecutter.description }}",
            capabilities=frozenset({Capability.ADOPT, Capability.GRACEFUL_STOP}),
        )
    ]
{%- elif cookiecutter.kind == "network-mode" -%}
from volant_core.sdk import NetworkModeDescriptor, hookimpl

from {{ cookiecutter.module }}.network import Network

#: The mode's name, as a VM's ``network.mode`` gives it.
NAME = "{{ cookiecutter.plugin_name }}"


@hookimpl
def volant_network_modes() -> list[NetworkModeDescriptor]:
    """Register the network mode; ``needs_ip=True`` would have the core lease the VM an address."""
    return [NetworkModeDescriptor(NAME, Network, description="{{ cookiecutter.description }}")]
{%- elif cookiecutter.kind == "boot-source" -%}
import os
from pathlib import Path

from volant_core.sdk import BootSourceDescriptor, hookimpl

from {{ cookiecutter.module }}.source import SCHEME, DirectorySource

#: The source's name, shown by ``volantd --list-plugins`` and ``GET /api/v1/system/info``.
NAME = "{{ cookiecutter.plugin_name }}"
#: Where the artifacts are read from (the variable overrides it).
ROOT_VARIABLE = "VOLANT_{{ cookiecutter.plugin_name|upper|replace('-', '_')|replace('.', '_') }}_ROOT"
ROOT = Path(os.environ.get(ROOT_VARIABLE, "/var/lib/{{ cookiecutter.distribution }}"))


@hookimpl
def volant_boot_sources() -> list[BootSourceDescriptor]:
    """Register the source of ``{{ cookiecutter.plugin_name|replace('_', '-')|replace('.', '-') }}://`` URLs."""
    description = "{{ cookiecutter.description }}"
    return [BootSourceDescriptor(NAME, (SCHEME,), DirectorySource(ROOT).open, description)]
{%- elif cookiecutter.kind == "runtime" -%}
from pathlib import Path

from volant_core.sdk import hookimpl


@hookimpl
def volant_runtime_manifests() -> list[Path]:
    """The runtime's manifest; its payload, ``payload.cpio.gz`` beside it, is read by ``package://``."""
    return [Path(__file__).with_name("manifest.json")]
{%- elif cookiecutter.kind == "device-driver" -%}
from pydantic import BaseModel
from volant_core.sdk import DeviceDriverDescriptor, hookimpl

from {{ cookiecutter.module }}.devices import DeviceDriver, DriverSettings

#: The driver's name, shown by ``volantd --list-plugins`` and ``GET /api/v1/system/info``.
NAME = "{{ cookiecutter.plugin_name }}"


@hookimpl
def volant_settings() -> list[type[BaseModel]]:
    """Declare the driver's settings (which devices VMs may be given)."""
    return [DriverSettings]


@hookimpl
def volant_device_drivers() -> list[DeviceDriverDescriptor]:
    """Register the driver of the VMs' PCI devices."""
    description = "{{ cookiecutter.description }}"
    return [DeviceDriverDescriptor(NAME, DeviceDriver, bus="pci", description=description)]
{%- elif cookiecutter.kind == "seed-builder" -%}
from volant_core.sdk import SeedBuilderDescriptor, hookimpl

from {{ cookiecutter.module }}.seed import SeedBuilder

#: The builder's name, as a VM's ``cloud_init.seed_mode`` gives it.
NAME = "{{ cookiecutter.plugin_name }}"


@hookimpl
def volant_seed_builders() -> list[SeedBuilderDescriptor]:
    """Register the builder of the VMs' configuration seeds."""
    return [SeedBuilderDescriptor(NAME, SeedBuilder, description="{{ cookiecutter.description }}")]
{%- endif %}
