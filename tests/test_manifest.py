"""Runtime manifests: Go compatibility, normalisation, errors, guest encoding, published schema."""

from __future__ import annotations

import base64
import copy
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from volant_core.errors import ValidationError
from volant_core.manifest import (
    CMDLINE_MANIFEST_BUDGET,
    DEFAULT_CPU_CORES,
    DEFAULT_MEMORY_MB,
    Manifest,
    decode_from_guest,
    encode_for_guest,
    json_schema,
    main,
    manifest_json,
    parse_manifest,
)

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "docs" / "schemas" / "runtime-manifest.schema.json"
REGENERATE = "uv run python -m volant_core.manifest --schema > docs/schemas/runtime-manifest.schema.json"
DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

#: Every top-level key of the Go plugin manifest v1 JSON Schema.
GO_FIELDS = {
    "$schema",
    "schema_version",
    "name",
    "version",
    "runtime",
    "image",
    "image_digest",
    "enabled",
    "openapi",
    "labels",
    "resources",
    "workload",
    "health_check",
    "actions",
    "rootfs",
    "initramfs",
    "disks",
    "cloud_init",
    "network",
    "devices",
}

# Manifests written the way the Go Volant documents them (every field of its schema appears).
GO_INITRAMFS = {
    "$schema": "https://raw.githubusercontent.com/volantvm/volant/main/docs/schemas/plugin-manifest-v1.json",
    "schema_version": "1.0",
    "name": "caddy",
    "version": "0.1.0",
    "runtime": "caddy",
    "image": "docker.io/library/caddy:2",
    "image_digest": f"sha256:{DIGEST}",
    "enabled": True,
    "openapi": "https://example.org/caddy/openapi.json",
    "labels": {"tier": "web"},
    "resources": {"cpu_cores": 1, "memory_mb": 512},
    "initramfs": {"url": "https://artifacts.example.org/caddy.cpio.gz", "checksum": f"sha256:{DIGEST}"},
    "workload": {
        "type": "http",
        "base_url": "http://127.0.0.1:80",
        "entrypoint": ["/usr/bin/caddy", "run", "--config", "/etc/caddy/Caddyfile"],
        "env": {"XDG_DATA_HOME": "/data"},
        "workdir": "/srv",
    },
    "health_check": {"endpoint": "/", "timeout_ms": 10000},
    "actions": {
        "reload": {"description": "Reload the configuration", "method": "POST", "path": "/reload"},
        "status": {"method": "GET", "path": "/status", "timeout_ms": 2000},
    },
}
GO_ROOTFS = {
    "schema_version": "1.0",
    "name": "postgres",
    "version": "16.2",
    "resources": {"cpu_cores": 2, "memory_mb": 2048},
    "rootfs": {"url": "file:///var/lib/volant/postgres.qcow2", "checksum": DIGEST, "format": "qcow2"},
    "disks": [
        {"name": "data", "source": "/var/lib/volant/pgdata.img", "format": "raw", "readonly": False},
        {
            "name": "seed",
            "source": "https://example.org/seed.img",
            "checksum": DIGEST,
            "readonly": True,
            "target": "vdc",
        },
    ],
    "workload": {
        "type": "http",
        "base_url": "http://127.0.0.1:8008",
        "entrypoint": ["/usr/local/bin/pgrest"],
    },
    "cloud_init": {
        "datasource": "NoCloud",
        "seed_mode": "vfat",
        "user_data": {"inline": True, "content": "#cloud-config\nhostname: pg\n"},
        "meta_data": {"inline": True, "content": "instance-id: pg-1\n"},
        "network_config": {"inline": False, "path": "/etc/volant/network.yaml"},
    },
    "network": {
        "mode": "bridged",
        "subnet": "192.168.127.0/24",
        "gateway": "192.168.127.1",
        "auto_assign": True,
    },
    "devices": {"pci_passthrough": ["0000:01:00.0"], "allowlist": ["10de:*"]},
}
GO_VSOCK = {
    "schema_version": "1.0",
    "name": "echo",
    "version": "1.0.0",
    "runtime": "echo",
    "resources": {"cpu_cores": 1, "memory_mb": 128},
    "initramfs": {"url": "/var/lib/volant/echo.cpio.gz"},
    "workload": {"type": "http", "base_url": "http://127.0.0.1:7000", "entrypoint": ["/bin/echo-server"]},
    "network": {"mode": "vsock"},
}
MINIMAL = {
    "name": "pyhttp",
    "version": "1.0.0",
    "workload": {
        "type": "http",
        "base_url": "http://127.0.0.1:8000",
        "entrypoint": ["python3", "-m", "http.server"],
    },
}


#: What an artifact location may be, as a refusal says it.
LOCATION_RULE = "must be a URL such as https://host/file or file:///path, or an absolute path"

#: Marker for :func:`with_changes`: remove the key.
DELETE = object()


def with_changes(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with the dotted ``path`` set to ``value`` (or removed when value is DELETE)."""
    doc = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize("doc", [GO_INITRAMFS, GO_ROOTFS, GO_VSOCK], ids=["initramfs", "rootfs", "vsock"])
def test_go_example_manifests_are_accepted_and_round_trip(doc: dict[str, Any]) -> None:
    manifest = parse_manifest(doc)

    assert manifest.name == doc["name"]
    assert parse_manifest(manifest_json(manifest)) == manifest
    dumped = json.loads(manifest_json(manifest))
    assert set(doc) <= set(dumped)


def test_schema_covers_every_go_field() -> None:
    # plus expose: the Go manifest had none; here a manifest publishes ports (docs/networking/expose.md)
    assert set(json_schema()["properties"]) == GO_FIELDS | {"expose"}
    assert json_schema()["additionalProperties"] is False


def test_schema_key_is_kept() -> None:
    manifest = parse_manifest(GO_INITRAMFS)

    assert json.loads(manifest_json(manifest))["$schema"] == GO_INITRAMFS["$schema"]


def test_normalisation_matches_go() -> None:
    doc = {
        "name": "  web ",
        "version": " 2.0 ",
        "labels": {"team": " edge ", "volant.plugin": "spoofed", "": "dropped"},
        "rootfs": {"url": " https://example.org/web.img ", "format": " QCOW2 ", "checksum": DIGEST.upper()},
        "disks": [{"name": "d", "source": "/d.img", "format": "RAW"}],
        "workload": {
            "type": "http",
            "base_url": " http://127.0.0.1:9000 ",
            "entrypoint": ["", " /usr/bin/web ", "  ", "--port=9000"],
            "env": {" MODE ": " prod ", " ": "ignored"},
        },
        "actions": {
            "": {"method": "POST", "path": "/x"},
            " flush ": {"method": " POST ", "path": " /flush "},
        },
        "cloud_init": {"seed_mode": " VFAT "},
        "network": {"mode": " Bridged "},
    }

    manifest = parse_manifest(doc)

    assert (manifest.name, manifest.version, manifest.runtime) == ("web", "2.0", "web")
    assert manifest.labels == {"team": "edge", "volant.plugin": "web", "volant.runtime": "web"}
    assert manifest.workload.base_url == "http://127.0.0.1:9000"
    assert manifest.workload.entrypoint == ["/usr/bin/web", "--port=9000"]
    assert manifest.workload.env == {"MODE": "prod"}
    assert set(manifest.actions) == {"flush"}
    assert (manifest.actions["flush"].method, manifest.actions["flush"].path) == ("POST", "/flush")
    assert manifest.rootfs is not None
    assert (manifest.rootfs.url, manifest.rootfs.format) == ("https://example.org/web.img", "qcow2")
    assert manifest.rootfs.checksum == f"sha256:{DIGEST}"
    assert manifest.disks[0].format == "raw"
    assert manifest.cloud_init is not None
    assert (manifest.cloud_init.seed_mode, manifest.cloud_init.datasource) == ("vfat", "NoCloud")
    assert manifest.network is not None
    assert manifest.network.mode == "bridged"


def test_explicit_runtime_is_kept_and_labelled() -> None:
    manifest = parse_manifest({**MINIMAL, "runtime": "python"})

    assert manifest.runtime == "python"
    assert manifest.labels == {"volant.plugin": "pyhttp", "volant.runtime": "python"}


def test_defaults_resources_and_builtin_guest_image() -> None:
    manifest = parse_manifest(MINIMAL)

    assert (manifest.resources.cpu_cores, manifest.resources.memory_mb) == (
        DEFAULT_CPU_CORES,
        DEFAULT_MEMORY_MB,
    )
    assert manifest.rootfs is None and manifest.initramfs is None
    assert manifest.enabled is True


def test_network_mode_is_any_plugin_name() -> None:
    manifest = parse_manifest({**MINIMAL, "network": {"mode": "macvtap"}})

    assert manifest.network is not None and manifest.network.mode == "macvtap"


def test_manifest_is_immutable() -> None:
    manifest = parse_manifest(MINIMAL)

    with pytest.raises(Exception, match="frozen"):
        manifest.name = "other"  # type: ignore[misc]


INVALID = [
    ("missing workload", with_changes(MINIMAL, "workload", DELETE), "workload", "is required"),
    ("missing name", with_changes(MINIMAL, "name", DELETE), "name", "is required"),
    ("empty version", with_changes(MINIMAL, "version", ""), "version", "must not be empty"),
    ("blank name", with_changes(MINIMAL, "name", "   "), "name", "'' is not a valid name"),
    (
        "empty entrypoint",
        with_changes(MINIMAL, "workload.entrypoint", []),
        "workload.entrypoint",
        "must not be empty",
    ),
    (
        "blank entrypoint items",
        with_changes(MINIMAL, "workload.entrypoint", ["", "  "]),
        "workload.entrypoint",
        "must not be empty",
    ),
    ("workload type", with_changes(MINIMAL, "workload.type", "exec"), "workload.type", "'http'"),
    (
        "both rootfs and initramfs",
        {**MINIMAL, "rootfs": {"url": "/r.img"}, "initramfs": {"url": "/i.cpio"}},
        "initramfs",
        "rootfs and initramfs are mutually exclusive",
    ),
    (
        "bad checksum",
        {**MINIMAL, "initramfs": {"url": "/i", "checksum": "md5:abc"}},
        "initramfs.checksum",
        "must be sha256:<64 hex digits> or sha512:<128 hex digits>",
    ),
    (
        "short checksum",
        {**MINIMAL, "rootfs": {"url": "/r", "checksum": f"sha256:{DIGEST[:-1]}"}},
        "rootfs.checksum",
        "64 hex digits",
    ),
    (
        "disk checksum",
        {**MINIMAL, "disks": [{"name": "d", "source": "/d", "checksum": "x"}]},
        "disks[0].checksum",
        "sha256",
    ),
    (
        "disk name with a path in it",
        {**MINIMAL, "disks": [{"name": "../../etc/passwd", "source": "/d"}]},
        "disks[0].name",
        "must be a disk name: letters, digits, '.', '_' or '-', starting with a letter or digit "
        "(at most 63 characters)",
    ),
    (
        "base_url scheme",
        with_changes(MINIMAL, "workload.base_url", "ftp://h/"),
        "workload.base_url",
        "http://",
    ),
    (
        "base_url over TLS",
        with_changes(MINIMAL, "workload.base_url", "https://127.0.0.1:8443"),
        "workload.base_url",
        "must be an http:// URL with a host (kestrel talks plain HTTP to the workload inside the guest), "
        "e.g. http://127.0.0.1:8000",
    ),
    (
        "base_url on kestrel's port",
        with_changes(MINIMAL, "workload.base_url", "http://127.0.0.1:8080"),
        "workload.base_url",
        "port 8080 is kestrel's own in the guest (the agent listens there on every address, so the "
        "workload could not); let the workload listen on another port, e.g. http://127.0.0.1:8000",
    ),
    (
        "base_url that does not parse",
        with_changes(MINIMAL, "workload.base_url", "http://[::1"),
        "workload.base_url",
        "must be an http:// URL with a host (kestrel talks plain HTTP to the workload inside the guest), "
        "e.g. http://127.0.0.1:8000",
    ),
    (
        "base_url host",
        with_changes(MINIMAL, "workload.base_url", "http://"),
        "workload.base_url",
        "with a host",
    ),
    ("relative rootfs", {**MINIMAL, "rootfs": {"url": "images/r.img"}}, "rootfs.url", LOCATION_RULE),
    (
        "rootfs scheme without //",
        {**MINIMAL, "rootfs": {"url": "s3:bucket/r.img"}},
        "rootfs.url",
        LOCATION_RULE,
    ),
    (
        "rootfs URL that does not parse",
        {**MINIMAL, "rootfs": {"url": "http://[::1/r.img"}},
        "rootfs.url",
        LOCATION_RULE,
    ),
    ("rootfs format", {**MINIMAL, "rootfs": {"url": "/r", "format": "vmdk"}}, "rootfs.format", "'raw'"),
    (
        "unknown top-level key",
        {**MINIMAL, "kernel": "/boot/vmlinuz"},
        "kernel",
        "unknown field; allowed: $schema",
    ),
    (
        "unknown nested key",
        with_changes(MINIMAL, "workload.cmd", ["x"]),
        "workload.cmd",
        "unknown field; allowed: base_url, entrypoint, env, type, workdir",
    ),
    (
        "unknown key in a disk",
        {**MINIMAL, "disks": [{"name": "d", "source": "/d", "size": 1}]},
        "disks[0].size",
        "unknown field; allowed: checksum, format, name, readonly, source, target",
    ),
    (
        "unknown key in the rootfs",
        {**MINIMAL, "rootfs": {"url": "/r", "sha": DIGEST}},
        "rootfs.sha",
        "unknown field; allowed: checksum, format, persistent, url",
    ),
    (
        "unknown key in an action",
        {**MINIMAL, "actions": {"go": {"method": "POST", "path": "/go", "verb": "x"}}},
        "actions.go.verb",
        "allowed: description, method, path, timeout_ms",
    ),
    ("network mode type", {**MINIMAL, "network": {"mode": 5}}, "network.mode", "valid string"),
    ("network mode missing", {**MINIMAL, "network": {}}, "network.mode", "is required"),
    ("network mode name", {**MINIMAL, "network": {"mode": "my mode"}}, "network.mode", "plugin name"),
    (
        "subnet",
        {**MINIMAL, "network": {"mode": "bridged", "subnet": "10.0.0.1/33"}},
        "network.subnet",
        "CIDR",
    ),
    (
        "gateway outside subnet",
        {**MINIMAL, "network": {"mode": "bridged", "subnet": "10.0.0.0/24", "gateway": "10.0.1.1"}},
        "network.gateway",
        "inside subnet 10.0.0.0/24",
    ),
    ("exposed port as a boolean", {**MINIMAL, "expose": [{"port": True}]}, "expose[0].port", "valid integer"),
    ("cpu as text", {**MINIMAL, "resources": {"cpu_cores": "2"}}, "resources.cpu_cores", "valid integer"),
    (
        "zero memory",
        {**MINIMAL, "resources": {"memory_mb": 0}},
        "resources.memory_mb",
        "greater than or equal",
    ),
    (
        "negative timeout",
        {**MINIMAL, "health_check": {"endpoint": "/", "timeout_ms": -1}},
        "health_check.timeout_ms",
        "greater than or equal",
    ),
    (
        "cloud-init content and path",
        {**MINIMAL, "cloud_init": {"user_data": {"content": "x", "path": "/y"}}},
        "cloud_init.user_data",
        "content or path, not both",
    ),
    (
        "duplicate disks",
        {**MINIMAL, "disks": [{"name": "a", "source": "/a"}, {"name": "a", "source": "/b"}]},
        "disks",
        "repeated: a",
    ),
    ("env value type", with_changes(MINIMAL, "workload.env", {"A": 1}), "workload.env.A", "valid string"),
    ("not an object", ["name"], "manifest", "must be a JSON object"),
]


@pytest.mark.parametrize(
    ("doc", "field", "fragment"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_manifest_names_the_field(doc: Any, field: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_manifest(doc)

    error = caught.value
    assert error.field == field
    assert error.message.startswith(f"{field}: ")
    assert fragment in error.message
    assert {"field": field, "message": error.message.split(": ", 1)[1]} in error.details


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {**MINIMAL, "rootfs": {"url": "/r", "checksum": "md5:abc"}},
            "rootfs.checksum: must be sha256:<64 hex digits> or sha512:<128 hex digits>",
        ),
        ({**MINIMAL, "rootfs": {"url": "r.img"}}, f"rootfs.url: {LOCATION_RULE}"),
        (
            {**MINIMAL, "disks": [{"name": "-d", "source": "/d"}]},
            "disks[0].name: must be a disk name: letters, digits, '.', '_' or '-', starting with a letter "
            "or digit (at most 63 characters)",
        ),
        (with_changes(MINIMAL, "version", ""), "version: must not be empty"),
        (
            {**MINIMAL, "network": {"mode": "my mode"}},
            "network.mode: must be a plugin name: lower-case letters, digits, '.', '_' or '-'",
        ),
        (
            {**MINIMAL, "rootfs": {"url": "/r", "checksum": "abc123"}},
            "rootfs.checksum: must be sha256:<64 hex digits> or sha512:<128 hex digits>",
        ),
        ({k: v for k, v in MINIMAL.items() if k != "version"}, "version: is required"),
        ({**MINIMAL, "labels": ["a"]}, "labels: must be a JSON object"),
        (["name"], "manifest: must be a JSON object"),
    ],
    ids=[
        "checksum",
        "location",
        "disk-name",
        "empty",
        "plugin-name",
        "bare-digest-length",
        "missing",
        "map",
        "top",
    ],
)
def test_a_refusal_is_the_rule_to_follow(doc: Any, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_manifest(doc)

    assert caught.value.message == message


def test_every_error_is_reported() -> None:
    doc = {**MINIMAL, "version": "", "network": {"mode": 1}, "bogus": True}

    with pytest.raises(ValidationError) as caught:
        parse_manifest(doc)

    assert [item["field"] for item in caught.value.details] == ["version", "network.mode", "bogus"]
    assert caught.value.message == "; ".join(f"{d['field']}: {d['message']}" for d in caught.value.details)
    assert caught.value.to_dict()["error"]["code"] == "invalid"


@pytest.mark.parametrize("text", [b'{"name": ', "[1, 2", ""])
def test_invalid_json_text(text: bytes | str) -> None:
    with pytest.raises(ValidationError, match=r"^manifest: not valid JSON") as caught:
        parse_manifest(text)
    assert caught.value.field == "manifest"


def test_json_text_and_bytes_are_accepted() -> None:
    text = json.dumps(GO_VSOCK)

    assert parse_manifest(text) == parse_manifest(text.encode()) == parse_manifest(GO_VSOCK)


def test_manifest_json_is_compact_and_omits_unset_values() -> None:
    data = manifest_json(parse_manifest(MINIMAL))

    assert b" " not in data.replace(b"http.server", b"")
    assert b"null" not in data
    assert json.loads(data)["resources"] == {"cpu_cores": DEFAULT_CPU_CORES, "memory_mb": DEFAULT_MEMORY_MB}


def big_manifest(min_bytes: int) -> Manifest:
    """A valid manifest whose JSON is at least ``min_bytes`` long (env values that do not compress away)."""
    env = {
        f"VAR_{i:04d}": base64.b64encode(bytes((i * 37 + j) % 256 for j in range(48))).decode()
        for i in range(400)
    }
    manifest = parse_manifest(with_changes(MINIMAL, "workload.env", env))
    assert len(manifest_json(manifest)) >= min_bytes
    return manifest


@pytest.mark.parametrize(
    "manifest", [parse_manifest(GO_ROOTFS), big_manifest(16 * 1024)], ids=["rootfs", "16KiB"]
)
def test_guest_encoding_round_trips(manifest: Manifest) -> None:
    encoded = encode_for_guest(manifest)

    assert re.fullmatch(r"[A-Za-z0-9_-]+", encoded), "base64url without padding"
    assert decode_from_guest(encoded) == json.loads(manifest_json(manifest))
    assert parse_manifest(decode_from_guest(encoded)) == manifest


def test_large_manifest_exceeds_the_cmdline_budget() -> None:
    assert len(encode_for_guest(big_manifest(16 * 1024))) > CMDLINE_MANIFEST_BUDGET


def test_typical_manifest_fits_the_cmdline_budget() -> None:
    assert len(encode_for_guest(parse_manifest(GO_INITRAMFS))) <= CMDLINE_MANIFEST_BUDGET


def test_encoding_is_deterministic() -> None:
    reordered = dict(reversed(list(GO_INITRAMFS.items())))

    first = encode_for_guest(parse_manifest(GO_INITRAMFS))

    assert encode_for_guest(parse_manifest(GO_INITRAMFS)) == first
    assert encode_for_guest(parse_manifest(reordered)) == first


def test_encoding_does_not_depend_on_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A VM created an hour later gets the same kernel command line for the same manifest."""
    now = time.time()
    first = encode_for_guest(parse_manifest(GO_INITRAMFS))

    monkeypatch.setattr(time, "time", lambda: now + 3600)

    assert encode_for_guest(parse_manifest(GO_INITRAMFS)) == first


#: The guest encoding of :data:`MINIMAL`.
ENCODED_MINIMAL = encode_for_guest(parse_manifest(MINIMAL))


def test_decode_accepts_legacy_raw_json() -> None:
    legacy = base64.urlsafe_b64encode(json.dumps(GO_VSOCK).encode()).rstrip(b"=").decode()

    assert decode_from_guest(legacy) == GO_VSOCK


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("not base64!", "not base64url"),
        (base64.urlsafe_b64encode(b"[1, 2]").decode(), "not a JSON object"),
        (base64.urlsafe_b64encode(b"plain text").decode(), "not valid JSON"),
        (base64.urlsafe_b64encode(b"\x1f\x8b\x08\x00truncated").decode(), "corrupt gzip"),
        # characters outside the alphabet, four of them so that the padding alone does not tell
        (f"{ENCODED_MINIMAL[:8]}!!!!{ENCODED_MINIMAL[8:]}", "not base64url"),
        (f"{ENCODED_MINIMAL[:8]}    {ENCODED_MINIMAL[8:]}", "not base64url"),
    ],
    ids=["alphabet", "json-array", "text", "gzip", "stray-characters", "spaces"],
)
def test_decode_rejects_garbage(value: str, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment) as caught:
        decode_from_guest(value)

    assert caught.value.field == "volant.manifest"


def test_published_schema_is_current() -> None:
    committed = json.loads(SCHEMA_FILE.read_text()) if SCHEMA_FILE.is_file() else None

    assert committed == json_schema(), f"{SCHEMA_FILE.name} is stale; regenerate it with:\n  {REGENERATE}"


def test_schema_command_regenerates_the_published_file(capsys: pytest.CaptureFixture[str]) -> None:
    """The command in REGENERATE writes the committed file byte for byte: no diff without a change."""
    assert main(["--schema"]) == 0

    assert capsys.readouterr().out == SCHEMA_FILE.read_text()


def test_schema_command_without_schema_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])

    assert exited.value.code == 2
    output = capsys.readouterr()
    assert output.out == ""
    assert "the following arguments are required: --schema" in output.err


def test_schema_command_help_names_the_command_and_its_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """``--help`` shows how to run the command (the module, not a script name) and what ``--schema`` does."""
    with pytest.raises(SystemExit) as exited:
        main(["--help"])

    assert exited.value.code == 0
    assert (
        capsys.readouterr().out.split()
        == (
            "usage: python -m volant_core.manifest [-h] --schema Runtime manifests. options: "
            "-h, --help show this help message and exit --schema print the JSON Schema"
        ).split()
    )


def test_the_files_a_manifest_boots_from_are_listed_boot_medium_first() -> None:
    """The order in which volantd checks them, so the boot medium's refusal is the one reported."""
    artifacts = parse_manifest(GO_ROOTFS).artifacts("manifest.")

    assert [(a.field, a.format) for a in artifacts] == [
        ("manifest.rootfs.url", "qcow2"),
        ("manifest.disks[0].source", "raw"),
        ("manifest.disks[1].source", "raw"),
    ]
    initramfs = parse_manifest({**GO_INITRAMFS, "disks": [{"name": "d", "source": "/d.img"}]})
    assert [a.field for a in initramfs.artifacts()] == ["initramfs.url", "disks[0].source"]
