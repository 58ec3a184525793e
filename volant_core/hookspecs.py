"""The Volant plugin API: every hook a plugin may implement, and how each is called.

A plugin is a module (or an object) whose functions are marked `@hookimpl` and
named exactly like the hooks below, exposed through an entry point in the
`volant.plugins` group:

```toml
[project.entry-points."volant.plugins"]
my-plugin = "my_package.plugin"
```

Plugins import what they need from `volant_core.sdk` and nothing else.

## How Volant calls hooks

- **Mark every implementation** with `hookimpl`. A function without the
  decorator is ignored, even when its name is right; a decorated function whose
  name matches no hook makes the whole plugin `failed`, so a typo never goes
  unnoticed. Hook wrappers (`hookimpl(wrapper=True)` or `hookwrapper=True`)
  are refused the same way: implement the hook itself.
- **Take only the arguments you need.** Arguments are passed by name, so an
  implementation may declare any subset of the hook's parameters, in any order;
  asking for one the hook does not pass fails the plugin when it loads. A hook
  with a `context` argument gives each implementation its own plugin's
  `PluginContext`: its settings, state directory, event publisher and logger.
- **Order.** Implementations are called in pluggy's order: `tryfirst` ones
  first, then the others from the most recently registered plugin back to the
  first, then `trylast` ones. The core's own plugin (`core`) is registered
  first, so its defaults answer last.
- **One policy per hook**, given under each hook below:
  - **registration** hooks return lists of descriptors. They are called once
    per plugin when the plugins load, in one all-or-nothing pass: each item is
    type-checked, and a plugin whose hook raises, returns the wrong type or
    registers a name taken already is `failed` and keeps nothing it registered
    anywhere;
  - **validation** hooks may refuse: the first exception raised reaches the
    caller (a `ValidationError` becomes a 422) and the remaining
    implementations are not called;
  - **notification** hooks are told what happened: an implementation that
    raises is logged, its plugin becomes `degraded` with the error in its
    `errors`, a `PLUGIN_ERROR` event is published, and every other
    implementation is still called; what the core was doing never depends on
    them;
  - **resolution** hooks pick one answer (`firstresult`): the first
    implementation returning something other than None wins and the rest are
    not called. The core's default is `trylast`.
- **Failed and disabled plugins are never called.** A plugin listed in
  `VOLANT_DISABLE_PLUGINS` is not even imported. `volantd --list-plugins` and
  `volar system plugins` show each plugin's status, `volar doctor` the failed ones.
- **Hooks run in the daemon's threads**, often while a VM's lock is held:
  return quickly and hand slow work to a thread of your own.
  `VOLANT_TRACE_HOOKS=1` logs every call.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy
from pydantic import BaseModel

from volant_core import PROJECT_NAME
from volant_core.descriptors import (
    BootSourceDescriptor,
    DeviceDriverDescriptor,
    HostCheck,
    NetworkModeDescriptor,
    RouteDescriptor,
    SeedBuilderDescriptor,
)
from volant_core.launch import HypervisorDescriptor

if TYPE_CHECKING:
    import ipaddress

    import click

    from volant_core.context import PluginContext
    from volant_core.descriptors import LaunchAdditions
    from volant_core.events import Event
    from volant_core.launch import AgentChannel, Instance, LaunchSpec
    from volant_core.vm import VMView

hookspec = pluggy.HookspecMarker(PROJECT_NAME)

F = TypeVar("F", bound=Callable[..., Any])


class Policy(StrEnum):
    """How the core calls a hook (see the module documentation)."""

    REGISTRATION = "registration"
    VALIDATION = "validation"
    NOTIFICATION = "notification"
    RESOLUTION = "resolution"


#: Attribute of a spec function holding its :class:`Policy`.
POLICY_ATTRIBUTE = "volant_policy"
#: Attribute of a registration spec holding the type each returned item must have.
RETURNS_ATTRIBUTE = "volant_returns"


def _spec(policy: Policy, *, returns: type | None = None, firstresult: bool = False) -> Callable[[F], F]:
    def mark(function: F) -> F:
        setattr(function, POLICY_ATTRIBUTE, policy)
        setattr(function, RETURNS_ATTRIBUTE, returns)
        marked: F = hookspec(firstresult=firstresult)(function)
        return marked

    return mark


def registration(returns: type) -> Callable[[F], F]:
    """Mark a registration hook whose implementations return a list of ``returns`` items."""
    return _spec(Policy.REGISTRATION, returns=returns)


validation = _spec(Policy.VALIDATION)
notification = _spec(Policy.NOTIFICATION)
resolution = _spec(Policy.RESOLUTION, firstresult=True)


def policy_of(spec_function: Callable[..., Any]) -> Policy:
    """The calling policy of a hook specification."""
    return Policy(getattr(spec_function, POLICY_ATTRIBUTE))


# --------------------------------------------------------------------------
# Registration: return descriptors, indexed by name in the registries.
# --------------------------------------------------------------------------


@registration(HypervisorDescriptor)
def volant_hypervisors() -> list[HypervisorDescriptor]:
    """Register hypervisor backends.

    Return `HypervisorDescriptor(name, factory, description="", capabilities=frozenset(),
    available=None)` records. `factory` builds the backend's `Launcher` (`launch(spec)` and
    `adopt(spec, pid)`) once, the first time a VM uses the hypervisor, so a host without the VMM
    pays nothing for the plugin being installed. `available`, when given, returns None when the
    hypervisor can run on this host, or a sentence saying why not: a VM asking for it is then
    refused with that sentence (409). Both may take the plugin's `PluginContext` as their one
    argument, or nothing.

    `capabilities` are `Capability` values. A VM's configuration is checked against them before
    anything is allocated (a rootfs or disks need `disks`, passthrough devices `pci-passthrough`, a
    network mode what it `requires`), and every launch again once `volant_prepare_launch` added to
    it. The daemon's default hypervisor is `VOLANT_HYPERVISOR` (`volantd --hypervisor`, default
    `qemu`); a VM may name another in its `hypervisor` field. An unknown name is refused with the
    registered ones.

    ```python
    import shutil

    from volant_core.sdk import Capability, HypervisorDescriptor, Launcher, PluginContext, hookimpl


    def _launcher(context: PluginContext) -> Launcher:
        from my_vmm_plugin.launcher import MyVmmLauncher  # imported once a VM uses my-vmm

        return MyVmmLauncher(state_dir=context.state_dir)


    def _missing_binary() -> str | None:
        return None if shutil.which("my-vmm") else "my-vmm is not on PATH (apt-get install my-vmm)"


    @hookimpl
    def volant_hypervisors() -> list[HypervisorDescriptor]:
        return [
            HypervisorDescriptor(
                name="my-vmm",
                factory=_launcher,
                description="my-vmm with KVM",
                capabilities=frozenset({Capability.KVM, Capability.DISKS, Capability.CONSOLE}),
                available=_missing_binary,
            )
        ]
    ```
    """


@registration(NetworkModeDescriptor)
def volant_network_modes() -> list[NetworkModeDescriptor]:
    """Register network modes (`bridged`, `dhcp`, `vsock` ...).

    Return `NetworkModeDescriptor(name, factory, needs_ip=False, requires=frozenset(),
    publishes_ports=False, honours=frozenset(), description="")` records. A VM's `network.mode`
    comes from its configuration, else its runtime manifest, else `VOLANT_NETWORK_MODE` (default
    `none`, the core's: no NIC).

    `factory` (taking the plugin's context, or nothing) builds one object with `attach(vm)`, which
    creates the VM's host resources before launch and returns a `NetworkAttachment(nics=(),
    kernel_args=())`, and `detach(vm)`, which removes them. `detach` runs on every release (stop,
    crash, delete, recovery at daemon start, a failed launch), possibly twice or for a VM that was
    never attached: it must be idempotent.

    `needs_ip=True` has the core lease the VM an address through `volant_allocate_ip` (the VM's
    `ip_address`). `requires` names the hypervisor capabilities the mode needs
    (`Capability.TAP_NICS` for tap NICs): a VM on a hypervisor lacking one is refused with a 422.
    `publishes_ports` says the mode honours a VM's `expose`, and `honours` which of the `network`
    options `subnet`, `gateway` and `auto_assign` it uses: a VM setting one its mode does not honour
    is refused with a 422 naming the field, never silently ignored.

    ```python
    from volant_core.sdk import Capability, NetworkAttachment, NetworkModeDescriptor, NicSpec, hookimpl


    class StaticTap:
        def attach(self, vm) -> NetworkAttachment:
            tap = f"vt-{vm.name}"[:15]
            ...  # create the tap device and plug it into a bridge; tolerate it existing already
            return NetworkAttachment(
                nics=(NicSpec(tap=tap, mac=vm.mac_address, mtu=1500),),
                kernel_args=(f"ip={vm.ip_address}::192.168.127.1:255.255.255.0::eth0:off",),
            )

        def detach(self, vm) -> None:
            ...  # delete the tap device; ignore "no such device"


    @hookimpl
    def volant_network_modes() -> list[NetworkModeDescriptor]:
        return [
            NetworkModeDescriptor(
                "static-tap", StaticTap, needs_ip=True, requires=frozenset({Capability.TAP_NICS})
            )
        ]
    ```
    """


@registration(BootSourceDescriptor)
def volant_boot_sources() -> list[BootSourceDescriptor]:
    """Register readers of boot media by URL scheme.

    Return `BootSourceDescriptor(name, schemes, open, description="")` records. When a manifest
    names an artifact (kernel, initramfs, rootfs, disk) the cache does not hold, the first
    registered source whose `schemes` holds the URL's scheme (the empty string stands for a plain
    absolute path) is called as `open(url, offset=, deadline=, validators=)` and returns an
    `ArtifactStream(body, size=None, offset=0, validators={}, not_modified=False, in_place=None)`.
    A source only opens: the core reads `body`, checks it against `size`, verifies the manifest's
    checksum (`sha256:` or `sha512:`), stores the artifact by content, shares one download
    between the VMs that want it at the same time, reports progress and resumes a cut download by
    calling `open` again with `offset` set to the bytes it holds (return `offset=offset` when you
    start there, else `offset=0`: the core then starts over). `validators` hands back what your
    stream reported for the copy the core holds; answer `not_modified=True` (with an empty body)
    when that copy is still current. Raise `ValidationError` with a message naming the URL when it
    cannot be opened; `deadline` is the `time.monotonic()` time the whole fetch must end by
    (`VOLANT_ARTIFACT_DEADLINE`). The core registers plain paths, `file`, `http`, `https` and
    `package` first, so a plugin adds schemes rather than replaces those.

    ```python
    from collections.abc import Mapping

    from volant_core.sdk import ArtifactStream, BootSourceDescriptor, hookimpl


    def open_from_bucket(
        url: str, *, offset: int, deadline: float, validators: Mapping[str, str]
    ) -> ArtifactStream:
        response = ...  # ask the bucket for the object from byte `offset` on
        return ArtifactStream(response.body, size=response.object_size, offset=offset)


    @hookimpl
    def volant_boot_sources() -> list[BootSourceDescriptor]:
        return [BootSourceDescriptor("bucket", ("s3",), open_from_bucket, "objects in an S3 bucket")]
    ```
    """


@registration(DeviceDriverDescriptor)
def volant_device_drivers() -> list[DeviceDriverDescriptor]:
    """Register passthrough device drivers (for example VFIO for PCI devices).

    Return `DeviceDriverDescriptor(name, factory, bus="pci", description="")` records. A VM whose
    configuration (or manifest) lists `devices` is refused with a 422 when no driver for their bus
    is installed, or when its hypervisor lacks the `pci-passthrough` capability.

    `factory` (taking the plugin's context, or nothing) builds one object with
    `validate(vm, devices)`, called with every configuration check (create, PATCH, rollback) to refuse
    devices that cannot be passed through (raise `ValidationError`; it must not change the host);
    `attach(vm, devices)`, which claims the devices before launch and returns a `PciDeviceSpec` per
    device; and `detach(vm)`, which gives them back on every release and must be idempotent.

    ```python
    from volant_core.sdk import DeviceDriverDescriptor, PluginContext, hookimpl


    def _driver(context: PluginContext):
        from my_vfio_plugin.driver import VfioDriver  # validate, attach, detach

        return VfioDriver(claims=context.state_dir / "claims")


    @hookimpl
    def volant_device_drivers() -> list[DeviceDriverDescriptor]:
        return [DeviceDriverDescriptor("vfio-pci", _driver, bus="pci", description="PCI passthrough")]
    ```
    """


@registration(object)
def volant_runtime_manifests() -> list[Any]:
    """Ship runtime manifests inside a pip package.

    Return manifests: `Manifest` objects, dicts in the manifest's JSON shape, or `pathlib.Path`
    objects naming JSON files (a plain string is read as JSON text, not as a file name). They appear
    in `volar plugins list` next to the manifests installed through the API, with the source
    `package:<distribution>`, and come and go with the package. An invalid one fails the plugin.

    ```python
    from pathlib import Path

    from volant_core.sdk import hookimpl


    @hookimpl
    def volant_runtime_manifests() -> list[Path]:
        return [Path(__file__).with_name("manifest.json")]
    ```
    """


@registration(SeedBuilderDescriptor)
def volant_seed_builders() -> list[SeedBuilderDescriptor]:
    """Register builders of guest configuration disks (cloud-init NoCloud seeds).

    Return `SeedBuilderDescriptor(name, factory, description="")` records; a VM's
    `cloud_init.seed_mode` names one (a name nothing registered is refused with a 422). `factory`
    (taking the plugin's context, or nothing) builds one object whose `build(vm, cloud_init,
    directory)` writes the seed image into `directory` (empty, the VM's own) and returns its
    `DiskSpec`. The core attaches it read-only, last among the disks (after those plugins add too),
    builds it again on every boot and removes `directory` when the VM's resources are released.
    `cloud_init` is the manifest's merged with the VM's own, per document; documents are exactly
    as given (never trimmed). For kestrel to apply its subset in the base image, also write
    `json.dumps(seed_plan(user_data, meta_data, network_config))` as `SEED_PLAN_FILE` (both from
    `volant_core.sdk`) at the seed's root (docs/guest-contract.md).

    ```python
    from volant_core.sdk import DiskSpec, SeedBuilderDescriptor, hookimpl


    class NoCloudIso:
        def build(self, vm, cloud_init, directory) -> DiskSpec:
            seed = directory / "seed.iso"
            ...  # write cloud_init.user_data.content and a meta-data document into an ISO 9660 image
            return DiskSpec(path=seed, readonly=True)


    @hookimpl
    def volant_seed_builders() -> list[SeedBuilderDescriptor]:
        return [SeedBuilderDescriptor("iso", NoCloudIso, "cloud-init NoCloud seed on an ISO image")]
    ```
    """


@registration(HostCheck)
def volant_host_checks() -> list[HostCheck]:
    """Register checks that `volar doctor` runs on the host.

    Return `HostCheck(name, run)` records. `run` (taking the plugin's context, or nothing) returns
    `HostCheckResult(status, detail, fix="")`, `status` being `pass`, `warn` or `fail`: `detail`
    says what was seen and `fix` what to do about it. `volar doctor` runs every check locally (not
    through the API) and exits 1 when one fails; a check that raises counts as failed. The core
    registers `state-dir` and `guest-image-tools`.

    ```python
    import os

    from volant_core.sdk import HostCheck, HostCheckResult, hookimpl


    def check_vhost_net() -> HostCheckResult:
        if os.path.exists("/dev/vhost-net"):
            return HostCheckResult("pass", "/dev/vhost-net is present")
        return HostCheckResult("warn", "/dev/vhost-net is missing", fix="modprobe vhost_net")


    @hookimpl
    def volant_host_checks() -> list[HostCheck]:
        return [HostCheck(name="vhost-net", run=check_vhost_net)]
    ```
    """


@registration(type)
def volant_settings() -> list[type[BaseModel]]:
    """Declare the plugin's settings: a list holding one pydantic model class (or nothing).

    Each field `f` of the model is read from `VOLANT_<PLUGIN>_<F>` (the plugin's entry-point name in
    upper case, `-` and `.` as `_`), can be given as `volantd --<plugin>-<f>`, is listed in
    `volantd --help` and `volar doctor`, and is validated when the daemon starts: an invalid value
    stops it with a message naming the variable, and so does a variable under the plugin's prefix
    that names no field. Field names are lower-case letters, digits and `_`. The validated model
    reaches the plugin as `context.options`.

    ```python
    from pydantic import BaseModel, Field

    from volant_core.sdk import PluginContext, hookimpl


    class MySettings(BaseModel):
        bridge: str = Field("volant0", description="bridge the taps join")
        mtu: int = Field(1500, ge=576, description="MTU of the taps")


    @hookimpl
    def volant_settings() -> list[type[BaseModel]]:
        return [MySettings]  # VOLANT_MY_PLUGIN_BRIDGE, volantd --my-plugin-bridge ...


    def bridge_of(context: PluginContext) -> str:
        return context.options.bridge
    ```
    """


@registration(RouteDescriptor)
def volant_api_routes() -> list[RouteDescriptor]:
    """Mount HTTP routes on the API.

    Return `RouteDescriptor(path, resource, suffix=None, tags=())` records: a Falcon resource (an
    object with `on_get`, `on_post` ... responders) mounted at `path`, with an optional Falcon
    `suffix`. Plugin routes are mounted behind the API's authentication like the core's, and appear
    in `/openapi` under their `tags` (the plugin's name by default). A route clashing with a mounted
    one fails the plugin, none of its routes being mounted; the core's routes are never replaced.

    ```python
    from volant_core.sdk import RouteDescriptor, hookimpl


    class Quota:
        def on_get(self, req, resp) -> None:
            resp.media = {"max_vms": 10}


    @hookimpl
    def volant_api_routes() -> list[RouteDescriptor]:
        return [RouteDescriptor("/api/v1/x-quota", Quota(), tags=("quota",))]
    ```
    """


# --------------------------------------------------------------------------
# Daemon lifecycle: where a plugin reconciles what it owns on the host.
# --------------------------------------------------------------------------


@notification
def volant_daemon_started(vms: list[VMView], context: PluginContext) -> None:
    """Called once when volantd starts, after the store opened and running VMMs were re-adopted.

    `vms` are every VM the daemon knows, with their states after re-adoption (a VM whose VMM was
    gone is `crashed` and its resources were released). Reconcile what the plugin holds on the host
    against them: remove what belongs to no VM any more (an orphan tap, a stale claim), start again
    a helper process a crash took down, adopt one still running.

    ```python
    from volant_core.sdk import hookimpl


    @hookimpl
    def volant_daemon_started(vms, context) -> None:
        known = {vm.name for vm in vms}
        for claim in context.state_dir.glob("*.claim"):
            if claim.stem not in known:
                context.log.info("releasing the claim of deleted vm %s", claim.stem)
                claim.unlink()
    ```
    """


@notification
def volant_daemon_stopping(context: PluginContext) -> None:
    """Called once when volantd stops serving.

    VMs keep running (unless `volantd --stop-vms-on-exit`) and are re-adopted at the next start:
    stop the plugin's own threads and helpers, not what VMs use.

    ```python
    import threading

    from volant_core.sdk import hookimpl

    stop_sender = threading.Event()  # the plugin's sender thread returns once it is set


    @hookimpl
    def volant_daemon_stopping() -> None:
        stop_sender.set()
    ```
    """


# --------------------------------------------------------------------------
# VM lifecycle: called by the orchestrator in this order.
# --------------------------------------------------------------------------


@validation
def volant_vm_validate(vm: VMView, context: PluginContext) -> None:
    """Check a VM's resolved configuration before anything is allocated.

    Called at create, with the VM as it would be created (its hypervisor, network mode, resources,
    and its configuration in `vm.config`), before any address is leased or anything stored; and
    before every new configuration version is stored (`PATCH .../config`,
    `POST .../config/rollback`), with the VM as that configuration would boot it. The core has
    checked already that everything the configuration sets is honoured by something installed.
    Raise `ValidationError(message, field=...)` to refuse it: the API answers 422 with the message
    and nothing is written.

    ```python
    from volant_core.sdk import ValidationError, hookimpl


    @hookimpl
    def volant_vm_validate(vm) -> None:
        if vm.memory_mb > 8192:
            raise ValidationError("memory_mb: at most 8192 on this host", field="memory_mb")
    ```
    """


@validation
def volant_prepare_launch(vm: VMView, spec: LaunchSpec, context: PluginContext) -> LaunchAdditions | None:
    """Add to a VM's launch just before the hypervisor starts it.

    Called on every boot (create, start, restart), last of the host-resource steps: network, boot
    media, seed disk, devices, then this; `spec` is the `LaunchSpec` built so far. Return
    `LaunchAdditions(kernel_args=(), disks=(), pci_devices=(), devices=(), extra_args=())` or None:
    the additions of every implementation are appended to the spec (nothing can be removed), and any
    other return value fails the launch. The hypervisor must offer the capability of what is added
    (`disks`, `pci-passthrough`, `raw-arguments` for `devices` and `extra_args`). Raising aborts the
    launch and every step before this one is undone.

    Whatever you acquire here, release in `volant_release_launch`; files belong in `spec.vm_dir`,
    which the core deletes with the VM.

    ```python
    from volant_core.sdk import DiskSpec, LaunchAdditions, hookimpl


    @hookimpl
    def volant_prepare_launch(vm, spec) -> LaunchAdditions | None:
        if vm.config.get("manifest", {}).get("labels", {}).get("scratch") != "true":
            return None
        scratch = spec.vm_dir / "scratch.img"
        if not scratch.exists():
            with scratch.open("wb") as disk:
                disk.truncate(64 << 20)  # a sparse 64 MiB raw disk
        return LaunchAdditions(disks=(DiskSpec(path=scratch, serial="scratch"),))
    ```
    """


@notification
def volant_release_launch(vm: VMView, context: PluginContext) -> None:
    """Release what `volant_prepare_launch` acquired for `vm` on the host.

    Called first of the release steps (then devices, seed disk, network) on every path that ends a
    VM's VMM or never started it: stop, crash, delete, recovery at daemon start and a failed launch.
    It must be idempotent: it may run twice, or for a VM the plugin holds nothing for.

    ```python
    from volant_core.sdk import hookimpl


    @hookimpl
    def volant_release_launch(vm, context) -> None:
        (context.state_dir / f"{vm.name}.lease").unlink(missing_ok=True)
    ```
    """


@notification
def volant_vm_launched(vm: VMView, instance: Instance, context: PluginContext) -> None:
    """Called after the hypervisor started a VM's VMM process and the store recorded its pid.

    The guest may still be booting: the VM turns `running` later, when kestrel answers. `instance`
    is the hypervisor's `Instance` (`pid`, `accelerator`, `agent_channel`, `console_socket`,
    `console_log`).

    ```python
    from volant_core.sdk import hookimpl


    @hookimpl
    def volant_vm_launched(vm, instance, context) -> None:
        context.log.info("%s runs as pid %d with %s", vm.name, instance.pid, instance.accelerator)
    ```
    """


@notification
def volant_vm_stopped(vm: VMView, exit_status: int | None, context: PluginContext) -> None:
    """Called after a VM's VMM process ended and its host resources were released.

    Whether it was stopped through the API, powered off from inside or crashed: `vm.status` tells
    (`stopped` or `crashed`, with `vm.status_reason`). `exit_status` is the VMM's exit status,
    negative for a signal, or None when it is unknown.

    ```python
    from volant_core.sdk import hookimpl


    @hookimpl
    def volant_vm_stopped(vm, exit_status, context) -> None:
        if vm.status == "crashed":
            context.publish(f"{vm.name} crashed ({exit_status}): {vm.status_reason}", vm=vm.name)
    ```
    """


@notification
def volant_vm_deleted(vm: VMView, context: PluginContext) -> None:
    """Called after a VM and every host resource it held were removed.

    Its VMM is gone, its resources released, its runtime directory and its record deleted; `vm` is
    the last view of it. Forget what the plugin kept for it elsewhere (an external DNS record, a
    reservation in another system).

    ```python
    from volant_core.sdk import hookimpl

    _reservations: dict[str, str] = {}


    @hookimpl
    def volant_vm_deleted(vm) -> None:
        _reservations.pop(vm.name, None)
    ```
    """


@notification
def volant_event(event: Event, context: PluginContext) -> None:
    """Called for every event published on the daemon's bus, after it was stored.

    `event` is an `Event` with `type` (`VM_CREATED`, `VM_STARTING`, `VM_RUNNING`, `VM_STOPPING`,
    `VM_STOPPED`, `VM_CRASHED`, `VM_DELETED`, `VM_LOG`, `VM_CONFIG_CHANGED`, `VM_UNHEALTHY`,
    `VM_HEALTHY`, and the plugins'
    `PLUGIN_EVENT` and `PLUGIN_ERROR`), `name` (the VM), `status`, `message`, `data`, `timestamp`
    and `id`. The publisher waits for every implementation: do not block, queue the event and
    deliver it from a thread of your own. A `volant_event` that raises degrades its plugin but is
    not announced with another event.

    ```python
    import queue

    from volant_core.sdk import hookimpl

    outbox: queue.SimpleQueue = queue.SimpleQueue()  # drained by the plugin's own sender thread


    @hookimpl
    def volant_event(event) -> None:
        outbox.put(event.to_dict())
    ```
    """


# --------------------------------------------------------------------------
# Surfaces: extend the CLI.
# --------------------------------------------------------------------------


@notification
def volant_register_commands(cli: click.Group) -> None:
    """Add commands to `volar`: call `cli.add_command(...)`.

    Called once when `volar` needs commands beyond its own: to run a command whose name is not a
    core command, or to list them (`volar --help`, shell completion) when the installed
    distributions changed since the listing was cached; `cli` is the top-level `click.Group`. The
    core's commands (`volar vms list` ...) never load the plugins, so that they start quickly; a
    command named like a core one is never used. The commands added, their names and help, must
    depend only on the installed code (not on the environment or the network): `volar --help`
    lists them from a cache kept until a distribution is installed, upgraded or removed. Keep it
    cheap (no network, no heavy imports at module level). `volar` is not the daemon: an
    implementation that raises is reported on stderr and skipped, and `volar` goes on.

    ```python
    import click

    from volant_core.sdk import hookimpl


    @click.command()
    def hello() -> None:
        click.echo("hello from a plugin")


    @hookimpl
    def volant_register_commands(cli) -> None:
        cli.add_command(hello)
    ```
    """


# --------------------------------------------------------------------------
# Resolution: the first non-None answer wins; a core default, where there is one, answers last.
# --------------------------------------------------------------------------


@resolution
def volant_allocate_ip(
    vm_name: str, subnet: ipaddress.IPv4Network, taken: frozenset[str], reserved: frozenset[str]
) -> str | None:
    """Choose the IPv4 address to lease to a VM.

    Called when a VM whose network mode has `needs_ip` is created, or changes to such a mode,
    inside the store transaction that records the lease. `subnet` is the daemon's `VOLANT_SUBNET`;
    `taken` are the addresses leased now and `reserved` those never to be used (network, broadcast,
    host), as strings. Return an address of `subnet` or None to let the next implementation decide;
    the core default takes the lowest free address in numeric order. An answer outside the subnet,
    taken or reserved fails the operation; when every implementation returns None the subnet is
    full and creation is refused (409).

    ```python
    import hashlib
    import ipaddress

    from volant_core.sdk import hookimpl


    @hookimpl
    def volant_allocate_ip(vm_name, subnet, taken, reserved) -> str | None:
        # a stable address per VM name when that one is free; else let the core choose
        offset = int(hashlib.sha256(vm_name.encode()).hexdigest(), 16) % (subnet.num_addresses - 2) + 1
        candidate = str(ipaddress.IPv4Address(int(subnet.network_address) + offset))
        return None if candidate in taken or candidate in reserved else candidate
    ```
    """


@resolution
def volant_agent_channel(vm: VMView, instance: Instance, context: PluginContext) -> AgentChannel | None:
    """Offer a way to reach kestrel when the hypervisor's instance has none.

    The agent channel is the instance's (`instance.agent_channel`); only when that is None is this
    hook asked, at boot and at re-adoption, for example by a network mode that reaches kestrel over
    the VM's address. Return an `AgentChannel` (`connect(timeout)` returning a connected socket,
    `describe()`, `exclusive`) or None; when every implementation returns None, the boot fails (a
    re-adopted VM is marked crashed) because kestrel cannot be reached.

    ```python
    import socket

    from volant_core.sdk import AGENT_PORT, AgentChannel, hookimpl


    class TcpChannel:
        exclusive = False

        def __init__(self, address: str) -> None:
            self.address = address

        def connect(self, timeout: float) -> socket.socket:
            return socket.create_connection((self.address, AGENT_PORT), timeout=timeout)

        def describe(self) -> str:
            return f"tcp:{self.address}:{AGENT_PORT}"


    @hookimpl
    def volant_agent_channel(vm) -> AgentChannel | None:
        return TcpChannel(vm.ip_address) if vm.network_mode == "static-tap" and vm.ip_address else None
    ```
    """
