"""What kestrel applies from a cloud-init NoCloud seed: the *seed plan*, made on the host.

kestrel is stdlib-only (it runs in the guest image, which has no YAML parser), so the host reads
the seed's YAML documents and writes what kestrel applies as JSON next to them on the seed
(:data:`~volant_core.agent.constants.SEED_PLAN_FILE`). The documents themselves stay on the seed
byte for byte, for images with their own cloud-init. The subset (docs/guest-contract.md):

* host name: ``hostname``, else the first label of ``fqdn``, else meta-data's ``local-hostname``;
* ``write_files``: ``path`` (absolute), ``content``, ``encoding`` (text, ``b64``, ``gzip``,
  ``gz+b64``), ``permissions`` (octal), ``owner`` (``user[:group]``, resolved in the guest),
  ``append``;
* ``bootcmd`` and ``runcmd``: items that are a shell string or an argument list;
* user-data that starts with ``#!``: a script run once the ``runcmd`` commands ran;
* network-config version 2, for ``eth0`` (by key or ``match: {name: eth0}``): IPv4 ``addresses``,
  ``gateway4`` or a default route, ``nameservers.addresses``, ``dhcp4``.

What the documents hold beyond the subset is listed in the plan's ``not_applied`` (kestrel prints
each on the console); what is malformed inside the subset raises :class:`SeedPlanError` naming the
document and the key, so that the API refuses it before anything boots.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import ipaddress
import shlex
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

import yaml

from volant_core.agent.constants import SEED_PLAN_VERSION

#: Top-level cloud-config keys kestrel applies.
APPLIED_KEYS = frozenset({"hostname", "fqdn", "write_files", "bootcmd", "runcmd"})
#: Keys of a ``write_files`` entry kestrel applies.
WRITE_FILE_KEYS = frozenset({"path", "content", "encoding", "permissions", "owner", "append"})
#: The guest NIC a network-config may configure.
GUEST_NIC = "eth0"
_ENCODINGS = {
    "": (),
    "text/plain": (),
    "b64": ("b64",),
    "base64": ("b64",),
    "gzip": ("gzip",),
    "gz": ("gzip",),
    "gz+b64": ("b64", "gzip"),
    "gz+base64": ("b64", "gzip"),
    "gzip+b64": ("b64", "gzip"),
    "gzip+base64": ("b64", "gzip"),
}
_NIC_KEYS = frozenset({"addresses", "gateway4", "routes", "nameservers", "dhcp4", "match"})
_NETWORK_KEYS = frozenset({"version", "ethernets"})


class SeedPlanError(ValueError):
    """A document cannot be applied as written; ``document`` is ``user_data``, ``meta_data`` or
    ``network_config``."""

    def __init__(self, document: str, message: str) -> None:
        super().__init__(message)
        self.document = document
        self.message = message


def _yaml(document: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # ValueError: a date like 2001-13-45
        raise SeedPlanError(document, f"is not valid YAML: {exc}") from None


def _extra(keys: Any, known: frozenset[str]) -> list[str]:
    """The keys of a mapping outside ``known``, sorted (YAML keys need not be strings)."""
    return sorted(str(key) for key in keys if key not in known)


def _list(document: str, where: str, value: Any) -> list[Any]:
    """``value`` as a list (None: empty); SeedPlanError naming ``where`` when it is no list."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise SeedPlanError(document, f"{where}: must be a list")
    return value


def _mapping(document: str, text: str) -> dict[str, Any]:
    loaded = _yaml(document, text)
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SeedPlanError(document, f"must be a YAML mapping, not {type(loaded).__name__}")
    return loaded


def _command(key: str, index: int, item: Any) -> str:
    """One ``bootcmd``/``runcmd`` item as a shell command line."""
    if isinstance(item, str):
        return item
    if isinstance(item, list) and item and all(isinstance(arg, str | int | float) for arg in item):
        return shlex.join(str(arg) for arg in item)
    raise SeedPlanError("user_data", f"{key}[{index}]: must be a shell string or a list of arguments")


def _commands(config: Mapping[str, Any], key: str) -> list[str]:
    value = config.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise SeedPlanError("user_data", f"{key}: must be a list of commands (or one command string)")
    return [_command(key, index, item) for index, item in enumerate(value) if item is not None]


def _decoded(where: str, content: str, encoding: str) -> bytes:
    steps = _ENCODINGS.get(encoding.lower())
    if steps is None:
        raise SeedPlanError(
            "user_data",
            f"{where}.encoding: {encoding!r} is not one of {', '.join(sorted(e for e in _ENCODINGS if e))}",
        )
    data = content.encode()
    try:
        for step in steps:
            data = base64.b64decode(data, validate=True) if step == "b64" else gzip.decompress(data)
    except (binascii.Error, OSError, EOFError) as exc:
        raise SeedPlanError("user_data", f"{where}.content: not {encoding} data ({exc})") from None
    return data


def _permissions(where: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value  # YAML reads 0644 as octal already
    elif isinstance(value, str):
        try:
            mode = int(value, 8)
        except ValueError:
            raise SeedPlanError("user_data", f"{where}.permissions: {value!r} is not an octal mode") from None
    else:
        raise SeedPlanError("user_data", f"{where}.permissions: must be an octal mode like '0644'")
    if not 0 <= mode <= 0o7777:
        raise SeedPlanError("user_data", f"{where}.permissions: {value!r} is out of range")
    return mode


def _write_file(index: int, entry: Any, not_applied: list[str]) -> dict[str, Any]:
    where = f"write_files[{index}]"
    if not isinstance(entry, dict):
        raise SeedPlanError("user_data", f"{where}: must be a mapping with a path")
    not_applied += [f"cloud-config key {where}.{key}" for key in _extra(entry, WRITE_FILE_KEYS)]
    path = entry.get("path")
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path or path.endswith("/"):
        raise SeedPlanError("user_data", f"{where}.path: must be an absolute file path in the guest")
    if ".." in PurePosixPath(path).parts:
        raise SeedPlanError("user_data", f"{where}.path: must not contain '..'")
    content = entry.get("content", "")
    if not isinstance(content, str):
        raise SeedPlanError("user_data", f"{where}.content: must be a string")
    owner = entry.get("owner", "root:root")
    if not isinstance(owner, str) or not owner:
        raise SeedPlanError("user_data", f"{where}.owner: must be 'user' or 'user:group'")
    append = entry.get("append", False)
    if not isinstance(append, bool):
        raise SeedPlanError("user_data", f"{where}.append: must be true or false")
    data = _decoded(where, content, str(entry.get("encoding", "")))
    return {
        "path": path,
        "content_b64": base64.b64encode(data).decode(),
        "permissions": _permissions(where, entry.get("permissions", "0644")),
        "owner": owner,
        "append": append,
    }


def _hostname(config: Mapping[str, Any], meta: Mapping[str, Any]) -> str | None:
    for document, key, value in (
        ("user_data", "hostname", config.get("hostname")),
        ("user_data", "fqdn", config.get("fqdn")),
        ("meta_data", "local-hostname", meta.get("local-hostname")),
    ):
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise SeedPlanError(document, f"{key}: must be a host name")
        return value.strip().split(".")[0] if key == "fqdn" else value.strip()
    return None


def _user_data(text: str, plan: dict[str, Any]) -> dict[str, Any]:
    """Fill ``plan`` from user-data; the cloud-config (empty when it is none)."""
    if text.startswith("#!"):
        plan["script"] = True
        return {}
    if not text.strip():
        return {}
    if not text.startswith("#cloud-config"):
        first = text.splitlines()[0][:40]
        plan["not_applied"].append(f"user-data of the kind {first!r} (kestrel applies #cloud-config and #!)")
        return {}
    config = _mapping("user_data", text)
    plan["not_applied"] += [f"cloud-config key {key!r}" for key in _extra(config, APPLIED_KEYS)]
    plan["bootcmd"] = _commands(config, "bootcmd")
    plan["runcmd"] = _commands(config, "runcmd")
    files = _list("user_data", "write_files", config.get("write_files"))
    plan["write_files"] = [
        _write_file(index, entry, plan["not_applied"]) for index, entry in enumerate(files)
    ]
    return config


def _ipv4_interface(value: Any) -> str:
    try:
        return str(ipaddress.IPv4Interface(value)) if isinstance(value, str) and "/" in value else ""
    except ValueError:
        return ""


def _ipv4(document: str, where: str, value: Any) -> str:
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise SeedPlanError(document, f"{where}: {value!r} is not an IPv4 address") from None


def _nic(name: str, conf: Mapping[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    where = f"ethernets.{name}"
    plan["not_applied"] += [f"network-config key {where}.{key}" for key in _extra(conf, _NIC_KEYS)]
    nic: dict[str, Any] = {
        "addresses": [],
        "gateway": None,
        "nameservers": [],
        "dhcp4": bool(conf.get("dhcp4")),
    }
    for index, address in enumerate(_list("network_config", f"{where}.addresses", conf.get("addresses"))):
        interface = _ipv4_interface(address)
        if interface:
            nic["addresses"].append(interface)
        elif isinstance(address, str) and ":" in address:
            plan["not_applied"].append(f"network-config IPv6 address {address} ({where})")
        else:
            raise SeedPlanError(
                "network_config", f"{where}.addresses[{index}]: {address!r} is not <ipv4>/<prefix>"
            )
    if conf.get("gateway4") is not None:
        nic["gateway"] = _ipv4("network_config", f"{where}.gateway4", conf["gateway4"])
    for index, route in enumerate(_list("network_config", f"{where}.routes", conf.get("routes"))):
        if isinstance(route, dict) and route.get("to") in ("default", "0.0.0.0/0") and "via" in route:
            nic["gateway"] = _ipv4("network_config", f"{where}.routes[{index}].via", route["via"])
        else:
            plan["not_applied"].append(
                f"network-config route {route!r} ({where}; kestrel sets the default route)"
            )
    nameservers = conf.get("nameservers") or {}
    if not isinstance(nameservers, dict):
        raise SeedPlanError("network_config", f"{where}.nameservers: must be a mapping with addresses")
    servers = _list("network_config", f"{where}.nameservers.addresses", nameservers.get("addresses"))
    nic["nameservers"] = [_ipv4("network_config", f"{where}.nameservers.addresses", s) for s in servers]
    return nic


def _network_config(text: str, plan: dict[str, Any]) -> None:
    config = _mapping("network_config", text)
    config = config.get("network", config) if isinstance(config.get("network"), dict) else config
    if not config:
        return
    if config.get("version") != 2:
        plan["not_applied"].append(
            f"network-config version {config.get('version')!r} (kestrel reads version 2)"
        )
        return
    plan["not_applied"] += [f"network-config key {key!r}" for key in _extra(config, _NETWORK_KEYS)]
    ethernets = config.get("ethernets") or {}
    if not isinstance(ethernets, dict):
        raise SeedPlanError("network_config", "ethernets: must be a mapping of interfaces")
    for name, conf in ethernets.items():
        if not isinstance(conf, dict):
            raise SeedPlanError("network_config", f"ethernets.{name}: must be a mapping")
        matched = (conf.get("match") or {}).get("name", name) if isinstance(conf.get("match"), dict) else name
        if matched != GUEST_NIC:
            plan["not_applied"].append(
                f"network-config interface {name!r} (kestrel configures {GUEST_NIC} only)"
            )
            continue
        plan["network"] = _nic(str(name), conf, plan)


def seed_plan(user_data: str, meta_data: str, network_config: str | None) -> dict[str, Any]:
    """The plan kestrel applies for these seed documents (JSON-ready); :class:`SeedPlanError` when a
    document cannot be applied as written.
    """
    plan: dict[str, Any] = {
        "version": SEED_PLAN_VERSION,
        "hostname": None,
        "write_files": [],
        "bootcmd": [],
        "runcmd": [],
        "script": False,
        "network": None,
        "not_applied": [],
    }
    config = _user_data(user_data, plan)
    plan["hostname"] = _hostname(config, _mapping("meta_data", meta_data))
    if network_config is not None:
        _network_config(network_config, plan)
    return plan
