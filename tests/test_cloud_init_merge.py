"""The cloud-init seed a VM gets: its manifest's merged with its own, document by document (ADR 0038),
and documents kept byte for byte.
"""

from __future__ import annotations

import copy
from typing import Any

from volant_core.manifest import CloudInit, parse_manifest
from volant_core.orchestrator.requirements import cloud_init_of
from volant_core.orchestrator.vmconfig import VMConfig


def config(hello_manifest: dict[str, Any], manifest_seed: Any, own_seed: Any) -> VMConfig:
    document = copy.deepcopy(hello_manifest)
    if manifest_seed is not None:
        document["cloud_init"] = manifest_seed
    base = VMConfig.from_manifest("hello-http", parse_manifest(document))
    return base.model_copy(update={"cloud_init": own_seed})


def doc(text: str) -> dict[str, str]:
    return {"content": text}


def test_a_document_the_vm_gives_replaces_the_manifests_whole_and_the_others_are_inherited(
    hello_manifest: dict[str, Any],
) -> None:
    manifest_seed = {
        "seed_mode": "iso",
        "user_data": doc("#cloud-config\nhostname: from-manifest\nruncmd: [a]\n"),
        "network_config": doc("version: 2\n"),
    }
    own = CloudInit.model_validate({"seed_mode": "vfat", "user_data": doc("#cloud-config\nhostname: mine\n")})
    merged = cloud_init_of(config(hello_manifest, manifest_seed, own))
    assert merged is not None
    assert merged.user_data is not None and merged.user_data.content == "#cloud-config\nhostname: mine\n"
    assert merged.network_config is not None and merged.network_config.content == "version: 2\n"
    assert merged.meta_data is None
    assert merged.seed_mode == "vfat"  # the VM's own cloud_init decides the seed mode


def test_either_side_alone_is_used_as_it_is(hello_manifest: dict[str, Any]) -> None:
    only_manifest = cloud_init_of(config(hello_manifest, {"meta_data": doc("instance-id: m\n")}, None))
    assert only_manifest is not None and only_manifest.meta_data is not None
    own = CloudInit.model_validate({"user_data": doc("  #!/bin/sh\n\n")})
    only_own = cloud_init_of(config(hello_manifest, None, own))
    assert only_own is not None and only_own.user_data is not None
    assert only_own.user_data.content == "  #!/bin/sh\n\n", "a document was trimmed"
    assert cloud_init_of(config(hello_manifest, None, None)) is None
