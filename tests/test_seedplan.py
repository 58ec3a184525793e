"""The seed plan: how the host reads a seed's YAML documents into what kestrel applies, what it
refuses (422 before anything boots) and what it reports as not applied.
"""

from __future__ import annotations

import base64
import gzip

import pytest

from volant_core.seedplan import SeedPlanError, seed_plan


def plan(user_data: str = "", meta_data: str = "", network_config: str | None = None) -> dict:
    return seed_plan(user_data, meta_data, network_config)


def test_a_cloud_config_becomes_kestrels_steps_and_what_it_leaves_is_listed() -> None:
    gz = base64.b64encode(gzip.compress(b"zipped\n")).decode()
    got = plan(
        "#cloud-config\n"
        "hostname: web-1\n"
        "packages: [nginx]\n"
        "write_files:\n"
        "  - {path: /etc/a, content: plain}\n"
        f"  - {{path: /etc/b, content: '{gz}', encoding: gz+b64, permissions: '0600', owner: 'app:app'}}\n"
        "  - {path: /etc/c, content: more, append: true, defer: true}\n"
        "bootcmd: [echo early]\n"
        "runcmd:\n  - [touch, /run/a file]\n  - echo late\n  -\n"
    )
    assert got["hostname"] == "web-1"
    assert got["bootcmd"] == ["echo early"]
    assert got["runcmd"] == ["touch '/run/a file'", "echo late"]
    a, b, c = got["write_files"]
    assert (base64.b64decode(a["content_b64"]), a["permissions"], a["owner"]) == (
        b"plain",
        0o644,
        "root:root",
    )
    assert (base64.b64decode(b["content_b64"]), b["permissions"], b["owner"]) == (
        b"zipped\n",
        0o600,
        "app:app",
    )
    assert c["append"] is True
    assert got["not_applied"] == ["cloud-config key 'packages'", "cloud-config key write_files[2].defer"]
    assert got["script"] is False and got["network"] is None


@pytest.mark.parametrize(
    ("user_data", "meta_data", "hostname"),
    [
        ("#cloud-config\nhostname: a\nfqdn: b.example.org\n", "local-hostname: c\n", "a"),
        ("#cloud-config\nfqdn: b.example.org\n", "local-hostname: c\n", "b"),
        ("#cloud-config\n{}\n", "local-hostname: c\n", "c"),
        ("", "instance-id: x\n", None),
    ],
)
def test_the_host_name_comes_from_hostname_then_fqdn_then_local_hostname(
    user_data: str, meta_data: str, hostname: str | None
) -> None:
    assert plan(user_data, meta_data)["hostname"] == hostname


def test_a_script_is_run_and_other_kinds_of_user_data_are_reported() -> None:
    assert plan("#!/bin/sh\necho hi\n")["script"] is True
    assert plan("#include\nhttp://example.org/x\n")["not_applied"] == [
        "user-data of the kind '#include' (kestrel applies #cloud-config and #!)"
    ]


def test_network_config_v2_for_eth0_by_name_or_match() -> None:
    by_name = plan(
        network_config="version: 2\nethernets:\n  eth0:\n    addresses: [10.0.0.5/24, 'fd00::5/64']\n"
        "    routes: [{to: default, via: 10.0.0.1}, {to: 10.9.0.0/16, via: 10.0.0.2}]\n"
        "    nameservers: {addresses: [10.0.0.53]}\n"
    )
    assert by_name["network"] == {
        "addresses": ["10.0.0.5/24"],
        "gateway": "10.0.0.1",
        "nameservers": ["10.0.0.53"],
        "dhcp4": False,
    }
    assert len(by_name["not_applied"]) == 2  # the IPv6 address and the extra route
    matched = plan(
        network_config="network:\n  version: 2\n  ethernets:\n"
        "    nic:\n      match: {name: eth0}\n      dhcp4: true\n"
    )
    assert matched["network"]["dhcp4"] is True
    other = plan(network_config="version: 2\nethernets:\n  eth1: {dhcp4: true}\n")
    assert other["network"] is None and "interface 'eth1'" in other["not_applied"][0]
    v1 = plan(network_config="version: 1\nconfig: []\n")
    assert v1["network"] is None and "version 1" in v1["not_applied"][0]


@pytest.mark.parametrize(
    ("documents", "document", "words"),
    [
        ({"user_data": "#cloud-config\nhostname: [a\n"}, "user_data", "not valid YAML"),
        ({"user_data": "#cloud-config\n- a list\n"}, "user_data", "must be a YAML mapping"),
        ({"user_data": "#cloud-config\nwrite_files: [{path: etc/x}]\n"}, "user_data", "write_files[0].path"),
        ({"user_data": "#cloud-config\nwrite_files: [{path: /a/../../x}]\n"}, "user_data", "'..'"),
        (
            {"user_data": "#cloud-config\nwrite_files: [{path: /x, content: '!!', encoding: b64}]\n"},
            "user_data",
            "write_files[0].content",
        ),
        (
            {"user_data": "#cloud-config\nwrite_files: [{path: /x, encoding: rot13}]\n"},
            "user_data",
            "encoding",
        ),
        (
            {"user_data": "#cloud-config\nwrite_files: [{path: /x, permissions: '0999'}]\n"},
            "user_data",
            "octal",
        ),
        ({"user_data": "#cloud-config\nruncmd: [{a: 1}]\n"}, "user_data", "runcmd[0]"),
        ({"meta_data": "local-hostname: [x]\n"}, "meta_data", "local-hostname"),
        (
            {"network_config": "version: 2\nethernets:\n  eth0: {addresses: [10.0.0.300/24]}\n"},
            "network_config",
            "ethernets.eth0.addresses[0]",
        ),
        (
            {"network_config": "version: 2\nethernets:\n  eth0: {gateway4: nope}\n"},
            "network_config",
            "gateway4",
        ),
    ],
)
def test_documents_kestrel_cannot_apply_as_written_are_refused_naming_the_document(
    documents: dict[str, str], document: str, words: str
) -> None:
    with pytest.raises(SeedPlanError) as refused:
        plan(**documents)
    assert refused.value.document == document and words in refused.value.message


@pytest.mark.parametrize(
    "documents",
    [
        {"user_data": "#cloud-config\nbuilt: 2001-13-45\n"},
        {"user_data": "#cloud-config\n" + "[" * 5000},
        {"user_data": "#cloud-config\n1: numeric key\nhostname: h\n"},
        {"user_data": "#cloud-config\nwrite_files: 3\n"},
        {"network_config": "version: 2\nethernets:\n  eth0: {addresses: 5}\n"},
        {"network_config": "version: 2\nethernets:\n  eth0: {nameservers: [1.1.1.1]}\n"},
        {"network_config": "version: 2\nethernets:\n  eth0: {gateway4: 5}\n"},
        {"network_config": "version: 2\n7: x\nethernets: {}\n"},
    ],
)
def test_odd_yaml_is_applied_or_refused_never_a_crash(documents: dict[str, str]) -> None:
    """Whatever a client sends, the answer is a plan or a SeedPlanError (a 422), never a 500."""
    try:
        plan(**documents)
    except SeedPlanError:
        pass
