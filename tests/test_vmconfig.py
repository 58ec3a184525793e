"""The stored VM configuration and the PATCH merge rules, table-driven."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from volant_core.errors import ValidationError
from volant_core.manifest import parse_manifest
from volant_core.orchestrator.vmconfig import (
    FIELD_GROUPS,
    ConfigPatch,
    VMConfig,
    apply_patch,
    needs_restart,
    parse_patch,
    validate_config,
)

INITRAMFS = {"url": "https://example.com/layer.cpio.gz"}
ROOTFS = {"url": "https://example.com/root.img", "format": "qcow2"}
#: Marks a key that the merged document no longer has (its value is None or absent).
GONE = object()


@pytest.fixture
def manifest(hello_manifest: dict[str, Any]) -> dict[str, Any]:
    """The example manifest, normalised as the config stores it."""
    return parse_manifest(hello_manifest).model_dump(mode="json", by_alias=True, exclude_none=True)


@pytest.fixture
def base(manifest: dict[str, Any]) -> VMConfig:
    """A configuration with a non-default value in every key."""
    return validate_config(
        {
            "plugin": "hello-http",
            "runtime": "hello-http",
            "hypervisor": "qemu",
            "kernel_cmdline": "quiet",
            "kernel_override": "/boot/vmlinuz",
            "resources": {"cpu_cores": 2, "memory_mb": 1024},
            "api": {"host": "10.0.0.1", "port": 7777},
            "manifest": manifest,
            "devices": {"pci_passthrough": ["0000:01:00.0"], "allowlist": ["10de:*"]},
            "metadata": {"team": "web", "tier": 1},
            "expose": [{"name": "http", "port": 8000, "host_port": 8080}],
            "cloud_init": {"user_data": {"content": "#cloud-config\n"}},
            "network": {"mode": "bridged", "subnet": "10.0.0.0/24"},
            "initramfs": INITRAMFS,
            "restart_policy": {"mode": "on-failure", "max_restarts": 3, "backoff_s": 2.0},
        }
    )


def _other_manifest(manifest: dict[str, Any], **changes: Any) -> dict[str, Any]:
    other = copy.deepcopy(manifest)
    other["version"] = "0.2.0"
    other["workload"]["env"] = {"GREETING": "changed"}
    other.update(changes)
    return other


def _patched(base: VMConfig, patch: dict[str, Any]) -> dict[str, Any]:
    return apply_patch(base, parse_patch(patch)).to_json()


def _expect(base: VMConfig, changes: dict[str, Any]) -> dict[str, Any]:
    """The base document with ``changes`` applied: dotted paths to values, or GONE."""
    expected = base.to_json()
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = expected
        for part in parents:
            node = node[part]
        if value is GONE:
            node.pop(last, None)
        else:
            node[last] = value
    return expected


# (case id, patch, changed paths) -- every path not listed keeps its value.
MERGES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("empty patch", {}, {}),
    ("same plugin is allowed", {"plugin": "hello-http"}, {}),
    ("runtime equal to the manifest's", {"runtime": "hello-http"}, {}),
    ("runtime null is the manifest's", {"runtime": None}, {}),
    ("hypervisor set", {"hypervisor": "firecracker"}, {"hypervisor": "firecracker"}),
    ("hypervisor null is the daemon default", {"hypervisor": None}, {"hypervisor": GONE}),
    ("kernel_cmdline set", {"kernel_cmdline": "console=ttyS0"}, {"kernel_cmdline": "console=ttyS0"}),
    ("kernel_cmdline empty", {"kernel_cmdline": ""}, {"kernel_cmdline": ""}),
    ("kernel_cmdline null clears", {"kernel_cmdline": None}, {"kernel_cmdline": ""}),
    ("kernel_override set", {"kernel_override": "file:///k"}, {"kernel_override": "file:///k"}),
    ("kernel_override null clears", {"kernel_override": None}, {"kernel_override": GONE}),
    ("resources.cpu_cores alone", {"resources": {"cpu_cores": 4}}, {"resources.cpu_cores": 4}),
    ("resources.memory_mb alone", {"resources": {"memory_mb": 2048}}, {"resources.memory_mb": 2048}),
    ("resources empty object", {"resources": {}}, {}),
    ("resources.cpu_cores null", {"resources": {"cpu_cores": None}}, {"resources.cpu_cores": 1}),
    ("resources null", {"resources": None}, {"resources": {"cpu_cores": 1, "memory_mb": 384}}),
    ("api.port alone", {"api": {"port": 9000}}, {"api.port": 9000}),
    ("api.port as Go text", {"api": {"port": "9000"}}, {"api.port": 9000}),
    ("api.host alone", {"api": {"host": "h"}}, {"api.host": "h"}),
    ("api.host null", {"api": {"host": None}}, {"api.host": GONE}),
    ("api null", {"api": None}, {"api": {}}),
    ("restart_policy.mode alone", {"restart_policy": {"mode": "never"}}, {"restart_policy.mode": "never"}),
    (
        "restart_policy.backoff_s int",
        {"restart_policy": {"backoff_s": 5}},
        {"restart_policy.backoff_s": 5.0},
    ),
    (
        "restart_policy.max_restarts null",
        {"restart_policy": {"max_restarts": None}},
        {"restart_policy.max_restarts": 5},
    ),
    (
        "restart_policy null",
        {"restart_policy": None},
        {"restart_policy": {"mode": "never", "max_restarts": 5, "backoff_s": 1.0}},
    ),
    (
        "devices replaced whole",
        {"devices": {"pci_passthrough": ["0000:02:00.0"]}},
        {"devices": {"pci_passthrough": ["0000:02:00.0"], "allowlist": []}},
    ),
    ("devices null", {"devices": None}, {"devices": GONE}),
    (
        "cloud_init replaced whole",
        {"cloud_init": {"meta_data": {"content": "x"}}},
        {"cloud_init": {"datasource": "NoCloud", "seed_mode": "vfat", "meta_data": {"content": "x"}}},
    ),
    ("cloud_init null", {"cloud_init": None}, {"cloud_init": GONE}),
    ("network replaced whole", {"network": {"mode": "dhcp"}}, {"network": {"mode": "dhcp"}}),
    ("network mode lower-cased", {"network": {"mode": "VSOCK"}}, {"network": {"mode": "vsock"}}),
    ("network null is the default", {"network": None}, {"network": GONE}),
    (
        "initramfs replaced",
        {"initramfs": {"url": "/srv/other.cpio"}},
        {"initramfs": {"url": "/srv/other.cpio"}},
    ),
    ("initramfs null", {"initramfs": None}, {"initramfs": GONE}),
    (
        "rootfs instead of initramfs",
        {"initramfs": None, "rootfs": ROOTFS},
        {"initramfs": GONE, "rootfs": {**ROOTFS, "persistent": False}},  # stored with its default
    ),
    ("metadata replaced, not merged", {"metadata": {"owner": "ops"}}, {"metadata": {"owner": "ops"}}),
    ("metadata null clears", {"metadata": None}, {"metadata": {}}),
    (
        "expose replaced",
        {"expose": [{"port": 53, "protocol": "udp"}]},
        {"expose": [{"protocol": "udp", "port": 53, "mode": ""}]},
    ),
    ("expose [] clears", {"expose": []}, {"expose": []}),
    ("expose null clears", {"expose": None}, {"expose": []}),
]


@pytest.mark.parametrize(
    ("patch", "changes"), [case[1:] for case in MERGES], ids=[case[0] for case in MERGES]
)
def test_merge_rules(base: VMConfig, patch: dict[str, Any], changes: dict[str, Any]) -> None:
    assert _patched(base, patch) == _expect(base, changes)


def test_manifest_is_replaced_whole_and_keeps_the_other_keys(base: VMConfig, manifest: dict) -> None:
    other = _other_manifest(manifest)
    merged = _patched(base, {"manifest": other})
    assert merged["manifest"]["workload"]["env"] == {"GREETING": "changed"}
    assert merged["manifest"]["version"] == "0.2.0"
    assert {k: v for k, v in merged.items() if k != "manifest"} == {
        k: v for k, v in base.to_json().items() if k != "manifest"
    }


def test_null_defaults_come_from_the_new_manifest(base: VMConfig, manifest: dict) -> None:
    other = _other_manifest(manifest, runtime="hello-2", resources={"cpu_cores": 3, "memory_mb": 768})
    merged = _patched(base, {"manifest": other, "runtime": None, "resources": None})
    assert merged["runtime"] == "hello-2"
    assert merged["resources"] == {"cpu_cores": 3, "memory_mb": 768}


# (case id, patch, field the error names)
INVALID: list[tuple[str, dict[str, Any] | list[Any], str]] = [
    ("other plugin", {"plugin": "nginx"}, "plugin"),
    ("plugin null", {"plugin": None}, "plugin"),
    ("manifest null", {"manifest": None}, "manifest"),
    ("unknown key", {"cpus": 2}, "cpus"),
    ("unknown nested key", {"resources": {"gpus": 1}}, "resources.gpus"),
    ("not an object", ["cpu_cores"], "body"),
    ("zero cpus", {"resources": {"cpu_cores": 0}}, "resources.cpu_cores"),
    ("memory as text", {"resources": {"memory_mb": "512"}}, "resources.memory_mb"),
    ("too little memory", {"resources": {"memory_mb": 64}}, "resources.memory_mb"),
    ("runtime not the manifest's", {"runtime": "other"}, "runtime"),
    ("kernel_cmdline too long", {"kernel_cmdline": "x" * 1025}, "kernel_cmdline"),
    ("kernel_override relative", {"kernel_override": "boot/vmlinuz"}, "kernel_override"),
    ("api port out of range", {"api": {"port": 70000}}, "api.port"),
    ("expose port 0", {"expose": [{"port": 0}]}, "expose.0.port"),
    ("expose protocol", {"expose": [{"port": 80, "protocol": "sctp"}]}, "expose.0.protocol"),
    ("expose not a list", {"expose": {"port": 80}}, "expose"),
    ("metadata not an object", {"metadata": []}, "metadata"),
    ("restart mode", {"restart_policy": {"mode": "always"}}, "restart_policy.mode"),
    ("restart backoff 0", {"restart_policy": {"backoff_s": 0}}, "restart_policy.backoff_s"),
    ("restart count negative", {"restart_policy": {"max_restarts": -1}}, "restart_policy.max_restarts"),
    ("network mode name", {"network": {"mode": "Bad Mode!"}}, "network.mode"),
    ("network without mode", {"network": {"subnet": "10.0.0.0/24"}}, "network.mode"),
    ("rootfs next to initramfs", {"rootfs": ROOTFS}, "initramfs"),
    ("manifest without workload", {"manifest": {"name": "x", "version": "1"}}, "manifest.workload"),
]


#: The whole refusals of a patch changing what a VM is made of, each with its fix.
KEEPS_THE_PLUGIN = (
    "plugin: a VM keeps the plugin it was created from ('hello-http'); create a new VM to use another"
)
MANIFEST_NULL = "manifest: cannot be null; a VM always has a manifest (send a whole one to replace it)"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"plugin": "nginx"}, KEEPS_THE_PLUGIN),
        ({"plugin": None}, KEEPS_THE_PLUGIN),
        ({"manifest": None}, MANIFEST_NULL),
    ],
)
def test_the_plugin_and_the_manifest_stay_refused_with_the_fix(
    base: VMConfig, patch: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        _patched(base, patch)
    assert caught.value.message == message


def test_a_manifest_of_another_plugin_is_refused(base: VMConfig, manifest: dict) -> None:
    with pytest.raises(ValidationError) as caught:
        _patched(base, {"manifest": {**manifest, "name": "nginx"}})
    assert caught.value.field == "manifest.name"
    assert caught.value.message == (
        "manifest.name: 'nginx' is not this VM's runtime plugin 'hello-http'; a new manifest replaces the "
        "plugin's own (install another plugin and create a VM of it to run another)"
    )


@pytest.mark.parametrize(
    ("patch", "field"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_invalid_patches_name_the_field(base: VMConfig, patch: Any, field: str) -> None:
    before = base.to_json()
    with pytest.raises(ValidationError) as caught:
        apply_patch(base, parse_patch(patch))
    assert caught.value.field == field, caught.value.message
    assert caught.value.message.startswith(f"{field}: ")
    assert base.to_json() == before


def test_manifest_with_another_runtime_needs_the_runtime_too(base: VMConfig, manifest: dict) -> None:
    other = _other_manifest(manifest, runtime="hello-2")
    with pytest.raises(ValidationError) as caught:
        _patched(base, {"manifest": other})
    assert caught.value.field == "runtime"
    assert caught.value.message == (
        "runtime: 'hello-http' is not the manifest's runtime 'hello-2'; omit it, set it to null or to the "
        "manifest's runtime"
    )
    assert _patched(base, {"manifest": other, "runtime": "hello-2"})["runtime"] == "hello-2"


def test_patch_and_config_have_the_same_keys() -> None:
    assert set(ConfigPatch.model_fields) == set(VMConfig.model_fields)
    assert set(FIELD_GROUPS) <= set(VMConfig.model_fields)


def test_go_config_document_is_accepted(manifest: dict) -> None:
    """A Go ``vmconfig.Config`` (no hypervisor, port as text) validates; absent keys get defaults."""
    config = validate_config(
        {
            "plugin": "hello-http",
            "runtime": "hello-http",
            "kernel_cmdline": "",
            "resources": {"cpu_cores": 2, "memory_mb": 2048},
            "api": {"host": "192.168.127.1", "port": "7777"},
            "manifest": manifest,
        }
    )
    assert config.hypervisor is None and config.network is None
    assert config.api.port == 7777
    assert config.restart_policy.mode == "never"
    assert validate_config(config.to_json()) == config


def test_from_manifest_takes_runtime_and_resources(manifest: dict) -> None:
    config = VMConfig.from_manifest("hello-http", parse_manifest(manifest))
    assert (config.runtime, config.resources.cpu_cores, config.resources.memory_mb) == ("hello-http", 1, 384)
    assert config.to_json()["restart_policy"] == {"mode": "never", "max_restarts": 5, "backoff_s": 1.0}


def test_boot_manifest_swaps_the_boot_medium(base: VMConfig) -> None:
    assert base.boot_manifest().initramfs is not None
    assert base.boot_manifest().initramfs.url == INITRAMFS["url"]  # type: ignore[union-attr]
    with_rootfs = apply_patch(base, parse_patch({"initramfs": None, "rootfs": ROOTFS}))
    assert with_rootfs.boot_manifest().rootfs is not None
    assert with_rootfs.boot_manifest().initramfs is None
    plain = apply_patch(base, parse_patch({"initramfs": None}))
    assert plain.boot_manifest() == plain.manifest


@pytest.mark.parametrize(
    ("own", "override"), [("rootfs", "initramfs"), ("initramfs", "rootfs")], ids=["rootfs", "initramfs"]
)
def test_an_override_replaces_the_manifests_own_boot_medium(
    base: VMConfig, manifest: dict[str, Any], own: str, override: str
) -> None:
    """A manifest that boots from one medium, configured to boot from the other, boots only the other."""
    media = {"rootfs": ROOTFS, "initramfs": INITRAMFS}
    patch = {"manifest": {**manifest, own: media[own]}, "initramfs": None, override: media[override]}
    booted = apply_patch(base, parse_patch(patch)).boot_manifest()
    assert getattr(booted, own) is None
    assert getattr(booted, override).url == media[override]["url"]


def test_an_invalid_stored_config_names_the_field(base: VMConfig) -> None:
    document = {**base.to_json(), "resources": {"cpu_cores": 0}}
    with pytest.raises(ValidationError) as refused:
        validate_config(document)
    assert refused.value.field == "resources.cpu_cores"


def test_a_runtime_other_than_the_manifests_is_refused_with_the_fix(base: VMConfig) -> None:
    with pytest.raises(ValidationError) as refused:
        validate_config({**base.to_json(), "runtime": "other"})
    assert refused.value.field == "runtime"
    assert refused.value.message == (
        "runtime: 'other' is not the manifest's runtime 'hello-http'; omit it, set it to null or to the "
        "manifest's runtime"
    )


def test_the_manifests_schema_key_survives_the_config_round_trip(base: VMConfig, manifest: dict) -> None:
    """A stored configuration is read back as it was written, ``$schema`` included."""
    schema = "https://example.com/runtime-manifest.schema.json"
    config = apply_patch(base, parse_patch({"manifest": {**manifest, "$schema": schema}}))
    stored = json.loads(json.dumps(config.to_json()))
    assert stored["manifest"]["$schema"] == schema
    assert validate_config(stored) == config


def test_the_restart_backoff_doubles_up_to_its_cap(base: VMConfig) -> None:
    """The waits before automatic restarts: ``backoff_s``, doubled each time, at most a minute."""
    policy = {"mode": "on-failure", "max_restarts": 8, "backoff_s": 1.5}
    config = apply_patch(base, parse_patch({"restart_policy": policy}))
    waits = [config.restart_policy.delay(attempt) for attempt in range(9)]
    assert waits == [1.5, 3.0, 6.0, 12.0, 24.0, 48.0, 60.0, 60.0, None]


@pytest.mark.parametrize(
    ("patch", "restart"),
    [
        ({"metadata": {"x": 1}}, False),
        ({"restart_policy": {"mode": "never"}}, False),
        ({"resources": {"memory_mb": 512}}, True),
        ({"kernel_cmdline": "debug"}, True),
        ({"network": None}, True),
    ],
)
def test_only_boot_time_keys_need_a_restart(base: VMConfig, patch: dict[str, Any], restart: bool) -> None:
    assert needs_restart(base.to_json(), _patched(base, patch)) is restart


def test_persistent_root_replaces_the_roots_own_setting_and_null_restores_it(
    base: VMConfig, manifest: dict[str, Any]
) -> None:
    persistent = {**manifest, "rootfs": {**ROOTFS, "persistent": True}}
    config = apply_patch(base, parse_patch({"manifest": persistent, "initramfs": None}))
    assert config.boot_manifest().rootfs.persistent  # type: ignore[union-attr]
    turned_off = apply_patch(config, parse_patch({"persistent_root": False}))
    assert not turned_off.boot_manifest().rootfs.persistent  # type: ignore[union-attr]
    assert turned_off.manifest.rootfs.persistent  # type: ignore[union-attr]  # the snapshot stays as given
    restored = apply_patch(turned_off, parse_patch({"persistent_root": None}))
    assert restored.boot_manifest().rootfs.persistent  # type: ignore[union-attr]
    on_override = apply_patch(
        base, parse_patch({"initramfs": None, "rootfs": ROOTFS, "persistent_root": True})
    )
    assert on_override.boot_manifest().rootfs.persistent  # type: ignore[union-attr]


def test_persistent_root_without_a_root_filesystem_is_refused_naming_it(base: VMConfig) -> None:
    """Nothing accepted and ignored: a VM booting an initramfs has no root to keep."""
    with pytest.raises(ValidationError, match="the VM boots no root filesystem") as refused:
        apply_patch(base, parse_patch({"persistent_root": True}))
    assert refused.value.field == "persistent_root"
