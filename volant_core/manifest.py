"""Runtime manifests: what a workload needs to boot and how kestrel runs it.

A runtime manifest names the workload (``name``, ``version``, ``runtime``), its
resources, how kestrel starts and probes it (``workload``, ``health_check``,
``actions``), its boot media (``rootfs`` or ``initramfs``, plus ``disks``) and
optional guest configuration (``cloud_init``, ``network``, ``devices``) and the
guest ports its VMs publish on the host (``expose``). The
models accept every manifest the Go Volant accepts through its JSON Schema and
normalise it the same way: strings are trimmed, ``runtime`` defaults to
``name``, ``labels`` always carry ``volant.plugin`` and ``volant.runtime``,
formats and modes are lower-cased, empty entrypoint items and empty env or
action keys are dropped.

Where we differ from Go, on purpose:

* ``resources`` is optional and defaults to 1 vCPU and 512 MiB
  (:data:`DEFAULT_CPU_CORES`, :data:`DEFAULT_MEMORY_MB`).
* At most one of ``rootfs`` and ``initramfs``; a manifest with neither boots
  the built-in Volant guest image.
* ``network.mode`` and ``cloud_init.seed_mode`` are free lower-case names:
  network modes and seed builders are plugins and their registries check the
  name. Artifact locations likewise accept any ``<scheme>://`` URL (boot
  sources are plugins selected by scheme) or an absolute path.
* Checksums are SHA-256 or SHA-512, ``sha256:<64 hex>``, ``sha512:<128 hex>`` or bare hex of
  either length, stored as ``<algorithm>:<lower-case hex>``.
* Unknown keys are refused (the Go code ignored them silently).
* ``name`` and ``runtime`` follow the VM name rule (a DNS label, see
  :data:`volant_core.vm.NAME_PATTERN`): they become catalog keys, labels and
  values on the guest's kernel command line.

The guest receives the manifest as ``volant.manifest=<value>`` on the kernel
command line, ``value`` being :func:`encode_for_guest`. Encoded manifests
longer than :data:`CMDLINE_MANIFEST_BUDGET` must reach the guest another way;
the orchestrator decides which.

Regenerate the published JSON Schema with::

    uv run python -m volant_core.manifest --schema > docs/schemas/runtime-manifest.schema.json
"""

from __future__ import annotations

import argparse
import base64
import binascii
import gzip
import ipaddress
import json
import re
import sys
import types
import typing
import zlib
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

import pydantic
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

from volant_core.agent.constants import AGENT_PORT
from volant_core.errors import ValidationError
from volant_core.vm import NAME_PATTERN, name_problem

__all__ = [
    "CMDLINE_MANIFEST_BUDGET",
    "DEFAULT_CPU_CORES",
    "DEFAULT_MEMORY_MB",
    "Action",
    "ArtifactRef",
    "CloudInit",
    "CloudInitDoc",
    "Devices",
    "Disk",
    "HealthCheck",
    "Initramfs",
    "Manifest",
    "Network",
    "Resources",
    "RootFS",
    "Workload",
    "decode_from_guest",
    "encode_for_guest",
    "json_schema",
    "manifest_json",
    "parse_manifest",
]

#: Most characters of encoded manifest we put on the kernel command line. The
#: guest kernel cuts the whole command line at 2048 bytes and the base
#: arguments take about 150; a larger manifest goes through a file instead.
CMDLINE_MANIFEST_BUDGET = 1024
#: vCPUs of a manifest without ``resources``.
DEFAULT_CPU_CORES = 1
#: Memory (MiB) of a manifest without ``resources``.
DEFAULT_MEMORY_MB = 512
#: Label keys every normalised manifest carries.
LABEL_PLUGIN = "volant.plugin"
LABEL_RUNTIME = "volant.runtime"

#: Checksum algorithms an artifact's checksum may name, with the length of their hex digests.
CHECKSUM_ALGORITHMS = {"sha256": 64, "sha512": 128}
_CHECKSUM = re.compile(r"(?:([A-Za-z0-9]+):)?([0-9a-fA-F]+)")
_PLUGIN_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_DISK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_GZIP_MAGIC = b"\x1f\x8b"
_ROOT_FIELD = "manifest"
_GUEST_FIELD = "volant.manifest"


def _invalid(reason: str) -> PydanticCustomError:
    """A validation error whose message is exactly ``reason``."""
    return PydanticCustomError("volant_invalid", "{reason}", {"reason": reason})


def _lower(value: Any) -> Any:
    """Trim and lower-case strings; leave other input for the type check to refuse."""
    return value.strip().lower() if isinstance(value, str) else value


def normal_checksum(value: str) -> str | None:
    """``<algorithm>:<lower-case hex>`` for a checksum written ``sha256:<hex>``, ``sha512:<hex>``
    or as the bare hex digest of either (told apart by length); None when it is none of these.
    """
    match = _CHECKSUM.fullmatch(value.strip())
    if match is None:
        return None
    algorithm, digits = match.group(1), match.group(2)
    if algorithm is None:
        algorithm = next((a for a, n in CHECKSUM_ALGORITHMS.items() if n == len(digits)), "")
    algorithm = algorithm.lower()
    if CHECKSUM_ALGORITHMS.get(algorithm) != len(digits):
        return None
    return f"{algorithm}:{digits.lower()}"


#: How a checksum must be written.
CHECKSUM_FORMS = "sha256:<64 hex digits> or sha512:<128 hex digits>"


def _checksum(value: str) -> str:
    normal = normal_checksum(value)
    if normal is None:
        raise _invalid(f"must be {CHECKSUM_FORMS}")
    return normal


def _artifact_location(value: str) -> str:
    if value.startswith("/"):
        return value
    try:
        parts = urlsplit(value)
        has_target = bool(parts.netloc or parts.path)
        valid = bool(parts.scheme) and value.startswith(f"{parts.scheme}://") and has_target
    except ValueError:
        valid = False
    if not valid:
        raise _invalid("must be a URL such as https://host/file or file:///path, or an absolute path")
    return value


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        valid = parts.scheme == "http" and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        # kestrel speaks plain HTTP to the workload beside it in the guest: https:// would be
        # accepted and then not used.
        raise _invalid(
            "must be an http:// URL with a host (kestrel talks plain HTTP to the workload inside "
            "the guest), e.g. http://127.0.0.1:8000"
        )
    return value


def _workload_url(value: str) -> str:
    value = _http_url(value)
    if urlsplit(value).port == AGENT_PORT:
        raise _invalid(
            f"port {AGENT_PORT} is kestrel's own in the guest (the agent listens there on every "
            "address, so the workload could not); let the workload listen on another port, "
            "e.g. http://127.0.0.1:8000"
        )
    return value


def _plugin_name(value: str) -> str:
    if not _PLUGIN_NAME.fullmatch(value):
        raise _invalid("must be a plugin name: lower-case letters, digits, '.', '_' or '-'")
    return value


def _disk_name(value: str) -> str:
    if not _DISK_NAME.fullmatch(value):
        raise _invalid(
            "must be a disk name: letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(at most 63 characters)"
        )
    return value


def _runtime_name(value: str) -> str:
    if problem := name_problem(value):
        raise _invalid(problem)
    return value


def _without_empty_keys(value: dict[str, Any]) -> dict[str, Any]:
    return {key: item for key, item in value.items() if key}


NonEmptyStr = Annotated[str, Field(min_length=1)]
StrMap = Annotated[dict[str, str], AfterValidator(_without_empty_keys)]
Checksum = Annotated[str, AfterValidator(_checksum)]
ArtifactLocation = Annotated[str, Field(min_length=1), AfterValidator(_artifact_location)]
ImageFormat = Annotated[Literal["raw", "qcow2"], BeforeValidator(_lower)]
PluginName = Annotated[str, BeforeValidator(_lower), AfterValidator(_plugin_name)]
DiskName = Annotated[
    str, AfterValidator(_disk_name), Field(json_schema_extra={"pattern": f"^{_DISK_NAME.pattern}$"})
]
Millis = Annotated[int, Field(ge=0)]
#: A runtime's ``name`` and ``runtime`` follow the VM name rule: they become keys, labels and
#: kernel command line values.
RuntimeName = Annotated[
    str, AfterValidator(_runtime_name), Field(json_schema_extra={"pattern": NAME_PATTERN.pattern})
]


class ArtifactRef(NamedTuple):
    """A file a manifest or VM configuration names: where (``field``), what (``location``), for
    disk images the declared ``format``, and the ``checksum`` it must match when one is given."""

    field: str
    location: str
    format: str | None = None
    checksum: str | None = None


class _Model(BaseModel):
    """Shared settings: strict JSON types, trimmed strings, no unknown keys, immutable."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        str_strip_whitespace=True,
        frozen=True,
        use_attribute_docstrings=True,
    )


def _port_from_text(value: Any) -> Any:
    """Accept ports written as decimal strings (the Go config stored ``api.port`` as text)."""
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


#: A TCP or UDP port number.
Port = Annotated[int, BeforeValidator(_port_from_text), Field(ge=1, le=65535)]


class Expose(_Model):
    """A guest port published on the host (docs/networking/expose.md)."""

    name: str | None = None
    """Name of the mapping."""
    protocol: Literal["tcp", "udp"] = "tcp"
    """Transport protocol."""
    port: Port
    """Port in the guest."""
    host_port: Port | None = None
    """Port on the host; the guest port when omitted."""
    mode: str = ""
    """Network mode the mapping applies to; empty for any."""


class Resources(_Model):
    """vCPUs and memory of the VM; the VM's own configuration may override them."""

    cpu_cores: Annotated[int, Field(ge=1)] = DEFAULT_CPU_CORES
    """Number of vCPUs."""
    memory_mb: Annotated[int, Field(ge=1)] = DEFAULT_MEMORY_MB
    """Guest memory in MiB."""


class Workload(_Model):
    """The process kestrel starts in the guest and the HTTP service it exposes."""

    type: Literal["http"]
    """Kind of workload; ``http`` is the only one."""
    base_url: Annotated[str, AfterValidator(_workload_url)]
    """Where the workload listens inside the guest (any port but kestrel's 8080); kestrel proxies
    ``/v1/*`` to it."""
    entrypoint: Annotated[list[str], Field(json_schema_extra={"minItems": 1})]
    """Program and arguments; empty items are dropped."""
    env: StrMap = {}
    """Extra environment variables; empty keys are dropped."""
    workdir: str | None = None
    """Working directory of the workload."""

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, value: list[str]) -> list[str]:
        items = [item for item in value if item]
        if not items:
            raise _invalid("must not be empty")
        return items


class HealthCheck(_Model):
    """How kestrel decides the workload is up: GET ``base_url + endpoint`` until it answers."""

    endpoint: str
    """Path probed on the workload; empty skips the check."""
    timeout_ms: Millis
    """How long to wait for a healthy answer."""


class Action(_Model):
    """A named request forwarded to the workload through kestrel."""

    description: str | None = None
    """What the action does, for people."""
    method: NonEmptyStr
    """HTTP method, e.g. ``POST``."""
    path: NonEmptyStr
    """Path on the workload, e.g. ``/reload``."""
    timeout_ms: Millis | None = None
    """Timeout of the forwarded request."""


class RootFS(_Model):
    """A root filesystem image the guest boots from."""

    url: ArtifactLocation
    """URL (any scheme a boot source handles) or absolute path of the image."""
    checksum: Checksum | None = None
    """Checksum of the image: sha256:<64 hex digits> or sha512:<128 hex digits>."""
    format: ImageFormat = "raw"
    """Image format."""
    persistent: bool = False
    """Keep the workload's writes to its root across stop and start, in a copy-on-write overlay of
    the VM's own (removed with the VM); false: the image is mounted read-only under a RAM overlay."""


class Initramfs(_Model):
    """An initramfs the guest boots from (it must contain kestrel)."""

    url: ArtifactLocation
    """URL (any scheme a boot source handles) or absolute path of the initramfs."""
    checksum: Checksum | None = None
    """Checksum of the initramfs: sha256:<64 hex digits> or sha512:<128 hex digits>."""


class Disk(_Model):
    """An extra block device attached after the boot media."""

    name: DiskName
    """Name of the disk, unique within the manifest (it names the VM's own copy of a writable disk)."""
    source: ArtifactLocation
    """URL or absolute path of the disk image."""
    checksum: Checksum | None = None
    """Checksum of the disk image: sha256:<64 hex digits> or sha512:<128 hex digits>."""
    format: ImageFormat = "raw"
    """Image format."""
    readonly: bool = False
    """Attach read-only."""
    target: str | None = None
    """Preferred guest device name (a hint)."""


class CloudInitDoc(_Model):
    """One cloud-init document, given inline (``content``) or as a file (``path``)."""

    inline: bool | None = None
    """True for ``content``, false for ``path``; may be omitted."""
    content: Annotated[str, StringConstraints(strip_whitespace=False)] | None = None
    """The document itself, kept byte for byte (never trimmed: the guest reads exactly this)."""
    path: str | None = None
    """A file the CLI reads and inlines."""

    @pydantic.model_validator(mode="after")
    def _one_source(self) -> CloudInitDoc:
        if self.content is not None and self.path is not None:
            raise _invalid("give content or path, not both")
        if self.inline is True and self.path is not None:
            raise _invalid("inline: true needs content, not path")
        if self.inline is False and self.content is not None:
            raise _invalid("inline: false needs path, not content")
        return self


class CloudInit(_Model):
    """A cloud-init seed built for the guest by a seed builder plugin."""

    datasource: NonEmptyStr = "NoCloud"
    """cloud-init datasource."""
    seed_mode: PluginName = "vfat"
    """Seed builder that makes the seed disk."""
    user_data: CloudInitDoc | None = None
    """The user-data document."""
    meta_data: CloudInitDoc | None = None
    """The meta-data document."""
    network_config: CloudInitDoc | None = None
    """The network-config document."""


class Network(_Model):
    """The network mode the VM wants (a ``volant_network_modes`` plugin) and its settings."""

    mode: PluginName
    """Network mode name, e.g. ``bridged``, ``dhcp`` or ``vsock``."""
    subnet: str | None = None
    """IPv4 subnet in CIDR form."""
    gateway: str | None = None
    """IPv4 gateway, inside ``subnet`` when both are given."""
    auto_assign: bool | None = None
    """Let the daemon choose the address."""

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.IPv4Network(value))
        except ValueError as exc:
            raise _invalid(f"must be an IPv4 network in CIDR form, e.g. 10.0.0.0/24 ({exc})") from None

    @field_validator("gateway")
    @classmethod
    def _gateway(cls, value: str | None, info: pydantic.ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            gateway = ipaddress.IPv4Address(value)
        except ValueError:
            raise _invalid("must be an IPv4 address, e.g. 10.0.0.1") from None
        subnet = info.data.get("subnet")
        if subnet is not None and gateway not in ipaddress.IPv4Network(subnet):
            raise _invalid(f"must lie inside subnet {subnet}")
        return str(gateway)


class Devices(_Model):
    """Host devices passed through to the guest; the device driver plugin checks them at launch."""

    pci_passthrough: list[str] = []
    """PCI addresses, e.g. ``0000:01:00.0``."""
    allowlist: list[str] = []
    """Allowed ``vendor:device`` (or ``vendor:*``) IDs."""


class Manifest(_Model):
    """A runtime manifest, normalised; see the module documentation for the rules."""

    json_schema_uri: str | None = Field(default=None, alias="$schema")
    """JSON Schema the document claims to follow (kept, not checked)."""
    schema_version: str | None = None
    """Manifest format version."""
    name: RuntimeName
    """Name of the runtime; the key it is installed under (a DNS label, like VM names)."""
    version: NonEmptyStr
    """Version of the runtime."""
    runtime: Annotated[str, Field(json_schema_extra={"pattern": NAME_PATTERN.pattern})] = Field(
        default="", validate_default=True
    )
    """Runtime a VM must ask for to use this manifest (a DNS label); defaults to ``name``."""
    image: str | None = None
    """OCI image the boot media were built from (informational)."""
    image_digest: str | None = None
    """Digest of that image (informational)."""
    enabled: bool = True
    """Whether VMs may be created from it."""
    openapi: str | None = None
    """URL or path of the workload's OpenAPI document."""
    labels: dict[str, str] = Field(default_factory=dict, validate_default=True)
    """Free-form labels; ``volant.plugin`` and ``volant.runtime`` are always set."""
    resources: Resources = Resources()
    """Default vCPUs and memory (1 vCPU, 512 MiB when omitted)."""
    workload: Workload
    """The workload kestrel starts."""
    health_check: HealthCheck | None = None
    """Boot gate: the VM is ready when this answers."""
    actions: Annotated[dict[str, Action], AfterValidator(_without_empty_keys)] = {}
    """Named requests exposed by the API; empty names are dropped."""
    rootfs: RootFS | None = None
    """Root filesystem to boot (exclusive with ``initramfs``)."""
    initramfs: Initramfs | None = None
    """Initramfs to boot (exclusive with ``rootfs``); neither means the built-in guest image."""
    disks: list[Disk] = []
    """Extra block devices, in order."""
    cloud_init: CloudInit | None = None
    """cloud-init seed for the guest."""
    network: Network | None = None
    """Preferred network mode."""
    devices: Devices | None = None
    """Passthrough devices."""
    expose: list[Expose] = []
    """Guest ports each VM of this manifest publishes on the host (a VM's own ``expose`` replaces them)."""

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, value: str, info: pydantic.ValidationInfo) -> str:
        if not value and "name" not in info.data:
            return value  # the name is invalid: its error is the one to report
        return _runtime_name(value or info.data["name"])

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str], info: pydantic.ValidationInfo) -> dict[str, str]:
        return {
            **_without_empty_keys(value),
            LABEL_PLUGIN: info.data.get("name", ""),
            LABEL_RUNTIME: info.data.get("runtime", ""),
        }

    @field_validator("initramfs")
    @classmethod
    def _one_boot_medium(cls, value: Initramfs | None, info: pydantic.ValidationInfo) -> Initramfs | None:
        if value is not None and info.data.get("rootfs") is not None:
            raise _invalid(
                "rootfs and initramfs are mutually exclusive: give one of them, "
                "or neither to boot the built-in Volant guest image"
            )
        return value

    @field_validator("disks")
    @classmethod
    def _unique_disk_names(cls, value: list[Disk]) -> list[Disk]:
        names = [disk.name for disk in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise _invalid(f"disk names must be unique; repeated: {', '.join(duplicates)}")
        return value

    def artifacts(self, prefix: str = "") -> list[ArtifactRef]:
        """The files this manifest boots from, each with its field path (after ``prefix``)."""
        found = [
            ArtifactRef(f"{prefix}disks[{i}].source", d.source, d.format, d.checksum)
            for i, d in enumerate(self.disks)
        ]
        if self.rootfs is not None:
            rootfs = self.rootfs
            found.insert(0, ArtifactRef(f"{prefix}rootfs.url", rootfs.url, rootfs.format, rootfs.checksum))
        if self.initramfs is not None:
            found.insert(
                0, ArtifactRef(f"{prefix}initramfs.url", self.initramfs.url, None, self.initramfs.checksum)
            )
        return found


# --------------------------------------------------------------------------
# Parsing and error reporting
# --------------------------------------------------------------------------


def parse_manifest(data: Mapping[str, Any] | bytes | str) -> Manifest:
    """Validate and normalise a manifest given as a mapping or as JSON text.

    Raises :class:`~volant_core.errors.ValidationError`: its message lists
    every problem as ``<field path>: <what is wrong>`` (``field`` is the first
    path) and ``details`` holds them as ``[{"field", "message"}]``.
    """
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise ValidationError(f"{_ROOT_FIELD}: not valid JSON ({exc})", field=_ROOT_FIELD) from None
    if isinstance(data, Mapping):
        data = dict(data)
    try:
        return Manifest.model_validate(data)
    except pydantic.ValidationError as exc:
        details = [{"field": _field_path(err["loc"]), "message": _message(err)} for err in exc.errors()]
        message = "; ".join(f"{item['field']}: {item['message']}" for item in details)
        raise ValidationError(message, field=details[0]["field"], details=details) from None


def _field_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or _ROOT_FIELD


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return "is required"
    if kind in ("model_type", "dict_type"):
        return "must be a JSON object"
    if kind == "string_too_short" and err.get("ctx", {}).get("min_length") == 1:
        return "must not be empty"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(err["loc"][:-1])
        return f"unknown field; allowed: {', '.join(allowed)}"
    return str(err["msg"])


def _allowed_keys(loc: Sequence[int | str]) -> list[str]:
    """The keys a manifest object accepts at ``loc`` (walking the model annotations)."""
    node: Any = Manifest
    for part in loc:
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            node = next(f.annotation for n, f in node.model_fields.items() if part in (n, f.alias))
        else:
            node = typing.get_args(node)[-1]
    node = _unwrap(node)
    return sorted(field.alias or name for name, field in node.model_fields.items())


def _unwrap(annotation: Any) -> Any:
    """Strip ``X | None`` down to the model or container type ``X`` (pydantic has already
    taken ``Annotated`` off every field's annotation)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    return annotation


# --------------------------------------------------------------------------
# Serialisation, guest encoding, JSON Schema
# --------------------------------------------------------------------------


def manifest_json(m: Manifest) -> bytes:
    """The manifest as compact, deterministic JSON (field order, no ``null`` values)."""
    return m.model_dump_json(by_alias=True, exclude_none=True).encode()


def encode_for_guest(m: Manifest) -> str:
    """The ``volant.manifest`` value: base64url without padding of gzip(:func:`manifest_json`).

    The gzip header carries no timestamp, so equal manifests encode equally.
    """
    packed = gzip.compress(manifest_json(m), mtime=0)
    return base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")


def decode_from_guest(value: str) -> dict[str, Any]:
    """Decode a ``volant.manifest`` value back to the manifest document (not validated).

    Accepts the gzip form of :func:`encode_for_guest` and the legacy form,
    base64url of the raw JSON. Uses the standard library only.
    """
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(f"{_GUEST_FIELD}: not base64url", field=_GUEST_FIELD) from None
    try:
        document = json.loads(gzip.decompress(raw) if raw.startswith(_GZIP_MAGIC) else raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValidationError(f"{_GUEST_FIELD}: corrupt gzip data ({exc})", field=_GUEST_FIELD) from None
    except ValueError as exc:
        raise ValidationError(f"{_GUEST_FIELD}: not valid JSON ({exc})", field=_GUEST_FIELD) from None
    if not isinstance(document, dict):
        raise ValidationError(f"{_GUEST_FIELD}: not a JSON object", field=_GUEST_FIELD)
    return document


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the manifest documents :func:`parse_manifest` accepts."""
    schema = Manifest.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "Volant runtime manifest",
        "description": "What a workload needs to boot in a Volant microVM and how kestrel runs it.",
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m volant_core.manifest --schema`` prints the JSON Schema."""
    parser = argparse.ArgumentParser(prog="python -m volant_core.manifest", description="Runtime manifests.")
    parser.add_argument("--schema", action="store_true", required=True, help="print the JSON Schema")
    parser.parse_args(argv)
    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
