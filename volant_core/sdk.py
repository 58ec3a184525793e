"""Everything a Volant plugin may import, in one module.

Plugin packages import from here (and use :mod:`volant_core.testing` in their tests); every other
module of ``volant_core`` is internal and may change in any release. What is listed in ``__all__``
keeps its name and meaning within a minor series.
"""

from volant_core import hookimpl, hostnet
from volant_core.agent.constants import SEED_PLAN_FILE
from volant_core.api.bodies import parse_body
from volant_core.api.openapi.operations import operation
from volant_core.channels import SerialLaneChannel, TcpChannel, UnixSocketChannel
from volant_core.cli.client import ApiClient
from volant_core.cli.context import pass_client
from volant_core.context import PluginContext, call_with_context
from volant_core.descriptors import (
    ArtifactStream,
    BootSourceDescriptor,
    DeviceDriver,
    DeviceDriverDescriptor,
    HostCheck,
    HostCheckResult,
    LaunchAdditions,
    NetworkAttachment,
    NetworkMode,
    NetworkModeDescriptor,
    NoNetwork,
    RouteDescriptor,
    SeedBuilder,
    SeedBuilderDescriptor,
)
from volant_core.errors import (
    AgentError,
    ConflictError,
    LaunchError,
    NotFoundError,
    PluginError,
    ValidationError,
)
from volant_core.events import Event, EventType
from volant_core.launch import (
    AGENT_LANES,
    AGENT_PORT,
    AgentChannel,
    BackingImage,
    Capability,
    DiskRole,
    DiskSpec,
    HypervisorDescriptor,
    Instance,
    Launcher,
    LaunchSpec,
    NicSpec,
    PciDeviceSpec,
    agent_serial_port_name,
    log_tail,
)
from volant_core.manifest import CloudInit, Devices, Manifest, decode_from_guest
from volant_core.netdev import IFNAME_MAX, tap_name
from volant_core.processes import AdoptedProcess, ChildProcess, VmmProcess, read_cmdline
from volant_core.seedplan import SeedPlanError, seed_plan
from volant_core.vm import VMStatus, VMView

__all__ = [
    "AGENT_LANES",
    "AGENT_PORT",
    "IFNAME_MAX",
    "SEED_PLAN_FILE",
    "AdoptedProcess",
    "AgentChannel",
    "AgentError",
    "ApiClient",
    "ArtifactStream",
    "BackingImage",
    "BootSourceDescriptor",
    "Capability",
    "ChildProcess",
    "CloudInit",
    "ConflictError",
    "DeviceDriver",
    "DeviceDriverDescriptor",
    "Devices",
    "DiskRole",
    "DiskSpec",
    "Event",
    "EventType",
    "HostCheck",
    "HostCheckResult",
    "HypervisorDescriptor",
    "Instance",
    "LaunchAdditions",
    "LaunchError",
    "LaunchSpec",
    "Launcher",
    "Manifest",
    "NetworkAttachment",
    "NetworkMode",
    "NetworkModeDescriptor",
    "NicSpec",
    "NoNetwork",
    "NotFoundError",
    "PciDeviceSpec",
    "PluginContext",
    "PluginError",
    "RouteDescriptor",
    "SeedBuilder",
    "SeedBuilderDescriptor",
    "SeedPlanError",
    "SerialLaneChannel",
    "TcpChannel",
    "UnixSocketChannel",
    "VMStatus",
    "VMView",
    "ValidationError",
    "VmmProcess",
    "agent_serial_port_name",
    "call_with_context",
    "decode_from_guest",
    "hookimpl",
    "hostnet",
    "log_tail",
    "operation",
    "parse_body",
    "pass_client",
    "read_cmdline",
    "seed_plan",
    "tap_name",
]
