"""Name -> descriptor registries, filled by one all-or-nothing registration pass per plugin.

For each plugin, every registration hook it implements is called and each returned item is
type-checked (:data:`volant_core.hookspecs.RETURNS_ATTRIBUTE`), manifests are parsed and the
settings model checked; only when all of that succeeded, and no name clashes with one registered
before, is anything added. A plugin that fails at any step is marked failed with the reason and
keeps nothing anywhere. A name registered twice is refused for the second plugin, with both owners
named.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from volant_core.descriptors import (
    BootSourceDescriptor,
    DeviceDriverDescriptor,
    HostCheck,
    NetworkModeDescriptor,
    RouteDescriptor,
    SeedBuilderDescriptor,
)
from volant_core.errors import NotFoundError, ValidationError, describe_exception, exception_text
from volant_core.hookspecs import RETURNS_ATTRIBUTE, Policy, policy_of
from volant_core.launch import HypervisorDescriptor
from volant_core.manifest import Manifest, parse_manifest
from volant_core.plugin_settings import model_problem

if TYPE_CHECKING:
    from volant_core.plugins import Plugins

T = TypeVar("T")

#: Distributions that provide the extensions a stock Volant knows of, by kind and name: named in
#: the error when a VM asks for one that is not installed.
KNOWN_PROVIDERS: dict[str, dict[str, str]] = {
    "hypervisor": {"qemu": "volant-qemu", "cloud-hypervisor": "volant-cloud-hypervisor"},
    "network mode": {
        "bridged": "volant-network-bridged",
        "dhcp": "volant-network-dhcp",
        "vsock": "volant-network-vsock",
    },
    "seed builder": {"vfat": "volant-cloudinit", "iso": "volant-cloudinit"},
    "device driver": {"pci": "volant-vfio"},
}


def install_hint(kind: str, name: str) -> str:
    """`` (pip install <distribution>)`` when a known distribution provides ``name``, else ``""``."""
    provider = KNOWN_PROVIDERS.get(kind, {}).get(name)
    return f" (pip install {provider})" if provider else ""


class Registry(Generic[T]):
    """Descriptors of one kind, by name, each remembering which plugin registered it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}

    def clash(self, name: str) -> str | None:
        """Why ``name`` cannot be registered (taken already), or None."""
        if name in self._items:
            return (
                f"{self.kind} {name!r} is registered by plugin {self._owners[name]!r} already; "
                f"uninstall or disable one of them"
            )
        return None

    def add(self, name: str, item: T, owner: str) -> None:
        """Add ``item`` (the caller checked :meth:`clash`)."""
        self._items[name] = item
        self._owners[name] = owner

    def get(self, name: str, *, field: str | None = None) -> T:
        """The descriptor named ``name``; NotFoundError listing the valid names otherwise."""
        try:
            return self._items[name]
        except KeyError:
            choices = ", ".join(sorted(self._items)) or "none installed"
            raise NotFoundError(
                f"unknown {self.kind} {name!r}{install_hint(self.kind, name)}; choose one of: {choices}",
                field=field,
            ) from None

    def owner(self, name: str) -> str:
        """Name of the plugin that registered ``name``."""
        return self._owners[name]

    def drop_owner(self, owner: str) -> None:
        """Forget everything ``owner`` registered."""
        for name in [n for n, o in self._owners.items() if o == owner]:
            del self._items[name], self._owners[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """``(owner, descriptor)`` pairs, by name."""
        return [(self._owners[name], self._items[name]) for name in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Registries:
    """Everything the plugins registered: one registry per extension kind, plus the manifests,
    settings models and API routes, each by owner.
    """

    hypervisors: Registry[HypervisorDescriptor] = field(default_factory=lambda: Registry("hypervisor"))
    network_modes: Registry[NetworkModeDescriptor] = field(default_factory=lambda: Registry("network mode"))
    boot_sources: Registry[BootSourceDescriptor] = field(default_factory=lambda: Registry("boot source"))
    device_drivers: Registry[DeviceDriverDescriptor] = field(
        default_factory=lambda: Registry("device driver")
    )
    seed_builders: Registry[SeedBuilderDescriptor] = field(default_factory=lambda: Registry("seed builder"))
    host_checks: Registry[HostCheck] = field(default_factory=lambda: Registry("host check"))
    runtime_manifests: list[tuple[str, Manifest]] = field(default_factory=list)
    settings: dict[str, type[BaseModel]] = field(default_factory=dict)
    routes: list[tuple[str, RouteDescriptor]] = field(default_factory=list)

    def named(self) -> dict[str, Registry[Any]]:
        """The name-keyed registries, by the registration hook that fills each."""
        return {
            "volant_hypervisors": self.hypervisors,
            "volant_network_modes": self.network_modes,
            "volant_boot_sources": self.boot_sources,
            "volant_device_drivers": self.device_drivers,
            "volant_seed_builders": self.seed_builders,
            "volant_host_checks": self.host_checks,
        }

    def drop(self, owner: str) -> None:
        """Forget everything plugin ``owner`` registered."""
        for registry in self.named().values():
            registry.drop_owner(owner)
        self.runtime_manifests = [(o, m) for o, m in self.runtime_manifests if o != owner]
        self.settings.pop(owner, None)
        self.routes = [(o, r) for o, r in self.routes if o != owner]

    def device_driver_for(self, bus: str) -> DeviceDriverDescriptor | None:
        """The driver registered for devices on ``bus``, if any."""
        return next((d for d in self.device_drivers if d.bus == bus), None)


def _registration_hooks(plugins: Plugins) -> list[str]:
    """Every registration hook, by name (pluggy adds the specifications in ``dir()`` order): the
    order in which each plugin's are called.
    """
    return [
        name
        for name, caller in vars(plugins.manager.hook).items()
        if getattr(caller, "spec", None) is not None
        and policy_of(caller.spec.function) == Policy.REGISTRATION
    ]


def load_manifest(item: Any) -> Manifest:
    """One item a ``volant_runtime_manifests`` implementation returned, as a validated
    :class:`Manifest` (a ``Path`` is a JSON file; ValidationError when it is not a valid manifest)."""
    if isinstance(item, Manifest):
        return item
    if isinstance(item, Path):
        return parse_manifest(item.read_bytes())
    return parse_manifest(item)


@dataclass
class _Pass:
    """What one plugin returned from its registration hooks, checked but not yet registered."""

    named: dict[str, list[Any]] = field(default_factory=dict)
    manifests: list[Manifest] = field(default_factory=list)
    settings: type[BaseModel] | None = None
    routes: list[RouteDescriptor] = field(default_factory=list)


def _collect(plugins: Plugins, owner: str, impl: Any, hook: str, done: _Pass) -> None:
    """Call one registration hook of one plugin and check what it returned (ValueError if wrong)."""
    result = plugins.calls.call_one(hook, owner, impl, {})
    if result is None:
        return
    if not isinstance(result, list | tuple):
        raise ValueError(f"{hook} must return a list, got {type(result).__name__}")
    expected = getattr(_spec_function(plugins, hook), RETURNS_ATTRIBUTE)
    for item in result:
        if not isinstance(item, expected):
            raise ValueError(f"{hook} must return {expected.__name__} items, got {item!r}")
    if hook == "volant_runtime_manifests":
        try:
            done.manifests = [load_manifest(item) for item in result]
        except (ValidationError, OSError) as err:
            message = err.message if isinstance(err, ValidationError) else str(err)
            raise ValueError(f"volant_runtime_manifests returned an invalid manifest: {message}") from None
    elif hook == "volant_settings":
        if len(result) > 1:
            raise ValueError("volant_settings must return at most one model class")
        for model in result:
            if problem := model_problem(owner, model):
                raise ValueError(problem)
            done.settings = model
    elif hook == "volant_api_routes":
        done.routes = list(result)
    else:
        done.named[hook] = list(result)


def _spec_function(plugins: Plugins, hook: str) -> Any:
    """The specification function of ``hook``."""
    return getattr(plugins.manager.hook, hook).spec.function


def register_all(plugins: Plugins) -> None:
    """The registration pass: each registered plugin in registration order, all or nothing."""
    hooks = _registration_hooks(plugins)
    by_plugin: dict[str, list[tuple[str, Any]]] = {}
    for hook in hooks:
        for owner, impl in reversed(plugins.calls.implementations(hook)):  # registration order
            by_plugin.setdefault(owner, []).append((hook, impl))
    registries = plugins.registries
    for owner in plugins.loaded():
        done = _Pass()
        try:
            for hook, impl in by_plugin.get(owner, []):
                _collect(plugins, owner, impl, hook, done)
        except Exception as err:  # a plugin's registration bug fails that plugin only
            detail = (
                exception_text(err) if isinstance(err, ValueError) else f"raised {describe_exception(err)}"
            )
            plugins.fail(owner, detail)
            continue
        clash = next(
            (
                problem
                for hook, items in done.named.items()
                for item in items
                if (problem := registries.named()[hook].clash(item.name))
            ),
            None,
        )
        duplicate = _duplicate_within(done)
        if clash or duplicate:
            plugins.fail(owner, clash or duplicate or "")
            continue
        for hook, items in done.named.items():
            for item in items:
                registries.named()[hook].add(item.name, item, owner)
        registries.runtime_manifests += [(owner, m) for m in done.manifests]
        if done.settings is not None:
            registries.settings[owner] = done.settings
        registries.routes += [(owner, r) for r in done.routes]


def _duplicate_within(done: _Pass) -> str | None:
    """A name one plugin registers twice in one registry, as an error message, or None."""
    for hook, items in done.named.items():
        names = [item.name for item in items]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            return f"{hook} returned {', '.join(repeated)} twice"
    return None
