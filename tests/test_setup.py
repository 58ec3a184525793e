"""``volar setup``: the real CLI run inside a network namespace of the test's own, with every file
under a ``--root`` of the test's own and ``--no-systemctl`` (no systemd here). Links, addresses,
sysctls under ``/proc/sys/net`` and nftables tables are per namespace: nothing of this machine's
network or ``/etc`` is touched.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from volant_core.testing.netns import NetworkNamespace, network_namespace

VOLAR = str(Path(sys.executable).parent / "volar")

#: Kernel parameters setup may change (``ip_forward`` flips the ``forwarding`` ones with it).
SYSCTLS = ("ipv4/ip_forward", "ipv4/conf/all/forwarding", "ipv4/conf/default/forwarding")

#: A table of somebody else's: setup and uninstall must leave it as it is.
FOREIGN_TABLE = "table inet keepme { chain input { type filter hook input priority 0; policy accept; }; }"


def run(
    ns: NetworkNamespace, *args: str, env: dict[str, str] | None = None, **kwargs: Any
) -> tuple[int, str, str]:
    """``volar <args>`` inside ``ns``: exit status, stdout, stderr."""
    child = ns.popen(
        [VOLAR, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs
    )
    out, err = child.communicate(timeout=120)
    return child.returncode, out, err


def setup(ns: NetworkNamespace, root: Path, *args: str, **kwargs: Any) -> tuple[int, str, str]:
    """``volar setup`` inside ``ns``, ALWAYS with ``--root`` and ``--no-systemctl``."""
    return run(ns, "setup", "--root", str(root), "--no-systemctl", *args, **kwargs)


def setup_json(ns: NetworkNamespace, root: Path, *args: str) -> dict[str, Any]:
    """``volar setup -o json``, which must succeed; its report."""
    status, out, err = setup(ns, root, "-o", "json", *args)
    assert status == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


def nft(ns: NetworkNamespace, *args: str, stdin: str | None = None) -> str:
    """``nft <args>`` inside ``ns``; its output."""
    child = ns.popen(
        ["nft", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = child.communicate(stdin, timeout=30)
    assert child.returncode == 0, err
    return out


def sysctls(ns: NetworkNamespace) -> dict[str, str]:
    """The values of :data:`SYSCTLS` in ``ns``."""
    with ns.enter():
        return {key: (Path("/proc/sys/net") / key).read_text().strip() for key in SYSCTLS}


def links(ns: NetworkNamespace) -> dict[str, tuple[str, bool, list[str]]]:
    """Each link of ``ns``: its kind, whether it is up, its IPv4 addresses."""
    found = {}
    for link in ns.ipr.get_links():
        info = link.get("IFLA_LINKINFO")
        kind = (info.get("IFLA_INFO_KIND") if info is not None else None) or ""
        addresses = sorted(
            f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}" for a in ns.ipr.get_addr(index=link["index"], family=2)
        )
        found[link.get("ifname")] = (kind, bool(link["flags"] & 1), addresses)
    return found


def files(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Everything under ``root``: mode, and content for files."""
    found: dict[str, tuple[int, bytes | None]] = {}
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        found[str(path.relative_to(root))] = (mode, path.read_bytes() if stat.S_ISREG(mode) else None)
    return found


def snapshot(ns: NetworkNamespace, root: Path) -> dict[str, Any]:
    """What setup may change: links, addresses, the nft ruleset, the sysctls, the files."""
    return {
        "links": links(ns),
        "nft": nft(ns, "list", "ruleset"),
        "sysctls": sysctls(ns),
        "files": files(root),
    }


def doctor_rows(ns: NetworkNamespace, state: Path) -> dict[str, dict[str, str]]:
    """``volar doctor -o json`` in ``ns``: its rows by check name."""
    env = {**os.environ, "VOLANT_STATE_DIR": str(state)}
    _, out, _ = run(ns, "doctor", "-o", "json", env=env)
    return {row["check"]: row for row in json.loads(out)}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The ``--root`` every setup of the test writes under."""
    (tmp_path / "root").mkdir()
    return tmp_path / "root"


def test_setup_sets_up_once_changes_nothing_the_second_time_and_uninstall_restores(
    volant_netns: NetworkNamespace, root: Path
) -> None:
    """A fresh namespace: setup makes the bridge, the address, forwarding, NAT and the files; a second
    run changes nothing and says so; --uninstall puts everything back as it was."""
    ns = volant_netns
    nft(ns, "-f", "-", stdin=FOREIGN_TABLE)
    before = snapshot(ns, root)

    first = setup_json(ns, root)
    assert first["done"]
    set_up = snapshot(ns, root)
    assert set_up["links"]["vbr0"] == ("bridge", True, ["192.168.127.1/24"])
    assert set_up["sysctls"]["ipv4/ip_forward"] == "1"
    assert 'ip saddr 192.168.127.0/24 oifname != "vbr0" masquerade' in set_up["nft"]
    assert "table inet keepme" in set_up["nft"]
    key_mode, key = set_up["files"]["etc/volant/api-key"]
    assert stat.S_IMODE(key_mode) == 0o600 and key is not None and len(key.strip()) >= 32
    unit = (root / "etc/systemd/system/volantd.service").read_text()
    for line in (
        "Environment=VOLANT_API_LISTEN=127.0.0.1:7777",
        "Environment=VOLANT_SUBNET=192.168.127.0/24",
        "Environment=VOLANT_HOST_IP=192.168.127.1",
        "Environment=VOLANT_API_KEY_FILE=/etc/volant/api-key",
        "Environment=VOLANT_BRIDGED_BRIDGE=vbr0",  # volant-network-bridged is installed here
    ):
        assert line in unit.splitlines()
    assert (root / "etc/sysctl.d/90-volant.conf").read_text().endswith("net.ipv4.ip_forward = 1\n")

    second = setup_json(ns, root)
    assert second["done"] == []
    assert snapshot(ns, root) == set_up
    assert setup_json(ns, root, "--dry-run")["planned"] == []

    undone = setup_json(ns, root, "--uninstall")
    assert undone["undone"]
    assert snapshot(ns, root) == before
    assert setup_json(ns, root, "--uninstall")["undone"] == []


def test_uninstall_keeps_what_the_host_had_before(volant_netns: NetworkNamespace, root: Path) -> None:
    """A bridge that existed (down, another address) stays; a replaced unit file comes back with its
    mode; an existing API key is used and kept; ip_forward already 1 stays 1."""
    ns = volant_netns
    ns.ipr.link("add", ifname="vbr0", kind="bridge")
    (index,) = ns.ipr.link_lookup(ifname="vbr0")
    ns.ipr.addr("add", index=index, address="10.9.0.1", prefixlen=16)
    with ns.enter():
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    (units / "volantd.service").write_text("[Service]\nExecStart=/opt/mine\n")
    (units / "volantd.service").chmod(0o640)
    (root / "etc/volant").mkdir()
    (root / "etc/volant/api-key").write_text("my-own-key\n")
    before = snapshot(ns, root)

    setup_json(ns, root)
    after = snapshot(ns, root)
    assert after["links"]["vbr0"] == ("bridge", True, ["10.9.0.1/16", "192.168.127.1/24"])
    assert (root / "etc/volant/api-key").read_text() == "my-own-key\n"
    assert "ExecStart=/opt/mine" not in (units / "volantd.service").read_text()

    setup_json(ns, root, "--uninstall")
    assert snapshot(ns, root) == before
    ns.ipr.link("del", index=index)


def test_dry_run_prints_the_plan_and_changes_nothing(volant_netns: NetworkNamespace, root: Path) -> None:
    """--dry-run lists the steps a real run takes, and the host stays as it was."""
    before = snapshot(volant_netns, root)
    planned = setup_json(volant_netns, root, "--dry-run")["planned"]
    assert "create bridge vbr0" in planned and "set net.ipv4.ip_forward = 1 (was 0)" in planned
    assert snapshot(volant_netns, root) == before
    done = setup_json(volant_netns, root)["done"]
    assert done == planned[: len(done)] and len(done) == len(planned)
    setup_json(volant_netns, root, "--uninstall")


def test_a_failing_step_undoes_the_whole_run(volant_netns: NetworkNamespace, root: Path) -> None:
    """The units cannot be written (``etc/systemd`` is a file): the bridge, forwarding, rules and the
    files written before are undone, and the error names what failed."""
    (root / "etc").mkdir()
    (root / "etc/systemd").write_text("in the way\n")
    before = snapshot(volant_netns, root)
    status, _, err = setup(volant_netns, root)
    assert status != 0
    assert "etc/systemd" in err and "undone" in err
    assert snapshot(volant_netns, root) == before


#: Bad options (or nft and iptables both missing from PATH), and what the error must name.
BAD_OPTIONS = [
    (["--subnet", "192.168.127.0/33"], {}, "--subnet"),
    (["--subnet", "192.168.127.1/24"], {}, "--subnet"),
    (["--host-ip", "10.0.0.1"], {}, "--host-ip"),
    (["--host-ip", "192.168.127.255"], {}, "--host-ip"),
    ([], {"VOLANT_SUBNET": "10.1.0.0/24"}, "--host-ip"),
    (["--bridge", "a-name-far-too-long"], {}, "--bridge"),
    (["--listen", "7777"], {}, "--listen"),
    (["--api-key-file", "relative/key"], {}, "--api-key-file"),
    (["--root", "/nonexistent/volant-root"], {}, "--root"),
    ([], {"PATH": "/nonexistent"}, "nft"),
]


def test_bad_options_are_refused_naming_the_flag_and_nothing_changes(
    volant_netns: NetworkNamespace, root: Path
) -> None:
    """Each bad option exits non-zero naming it, and the host stays as it was."""
    before = snapshot(volant_netns, root)
    for args, env, named in BAD_OPTIONS:
        status, _, err = setup(volant_netns, root, *args, env={**os.environ, **env})
        assert status != 0 and named in err, (args, env, err)
        assert snapshot(volant_netns, root) == before, (args, env)


def test_setup_refuses_to_run_as_a_normal_user(volant_netns: NetworkNamespace, root: Path) -> None:
    """Without root it changes nothing and says to use sudo (or --dry-run). (A user namespace of its
    own, without a mapping, makes the child uid 65534 yet lets it read this venv.)"""
    before = snapshot(volant_netns, root)
    argv = ["unshare", "--user", VOLAR, "setup", "--root", str(root), "--no-systemctl"]
    child = volant_netns.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = child.communicate(timeout=120)
    assert child.returncode != 0 and "run it as root" in err
    assert snapshot(volant_netns, root) == before


def test_an_existing_non_bridge_link_of_that_name_is_refused(
    volant_netns: NetworkNamespace, root: Path
) -> None:
    """A tap called like the bridge: refused naming --bridge, the tap left as it was."""
    volant_netns.ipr.link("add", ifname="vbr0", kind="tuntap", mode="tap")
    before = snapshot(volant_netns, root)
    status, _, err = setup(volant_netns, root)
    assert status != 0 and "--bridge" in err
    assert snapshot(volant_netns, root) == before
    volant_netns.ipr.link("del", index=volant_netns.ipr.link_lookup(ifname="vbr0")[0])


def test_doctor_warns_before_setup_and_passes_after(
    volant_netns: NetworkNamespace, root: Path, tmp_path: Path
) -> None:
    """`volar doctor` in the namespace: the bridge, ip_forward and NAT checks warn with the fix before
    setup, pass after it; a flushed NAT chain and ip_forward reset to 0 warn again, and a new setup
    run repairs both; after --uninstall they warn again."""
    checks = ("host-bridge", "ip-forward", "nat")
    rows = doctor_rows(volant_netns, tmp_path / "state")
    for check in checks:
        assert rows[check]["status"] == "warn", rows[check]
        assert "volar setup" in rows[check]["fix"]
    setup_json(volant_netns, root)
    set_up = snapshot(volant_netns, root)
    rows = doctor_rows(volant_netns, tmp_path / "state")
    assert {check: rows[check]["status"] for check in checks} == dict.fromkeys(checks, "pass")

    nft(volant_netns, "flush", "chain", "ip", "volant_setup", "postrouting")
    with volant_netns.enter():
        Path("/proc/sys/net/ipv4/ip_forward").write_text("0\n")
    rows = doctor_rows(volant_netns, tmp_path / "state")
    assert (rows["nat"]["status"], rows["ip-forward"]["status"]) == ("warn", "warn")
    assert setup_json(volant_netns, root)["done"]  # repaired
    assert snapshot(volant_netns, root) == set_up
    rows = doctor_rows(volant_netns, tmp_path / "state")
    assert {check: rows[check]["status"] for check in checks} == dict.fromkeys(checks, "pass")

    setup_json(volant_netns, root, "--uninstall")
    rows = doctor_rows(volant_netns, tmp_path / "state")
    assert {check: rows[check]["status"] for check in checks} == dict.fromkeys(checks, "warn")


def test_a_run_with_other_options_adds_to_the_record_and_uninstall_undoes_both(
    volant_netns: NetworkNamespace, root: Path
) -> None:
    """Set up, then again with another subnet: the rules and units follow the new subnet, both
    addresses stay on the bridge; --uninstall still restores the host as it was before the first run."""
    before = snapshot(volant_netns, root)
    setup_json(volant_netns, root)
    changed = setup_json(volant_netns, root, "--subnet", "10.77.0.0/24", "--host-ip", "10.77.0.1")["done"]
    assert "add address 10.77.0.1/24 to vbr0" in changed
    state = snapshot(volant_netns, root)
    assert 'ip saddr 10.77.0.0/24 oifname != "vbr0" masquerade' in state["nft"]
    assert "192.168.127.0/24" not in state["nft"]
    assert state["links"]["vbr0"] == ("bridge", True, ["10.77.0.1/24", "192.168.127.1/24"])
    assert (
        "Environment=VOLANT_SUBNET=10.77.0.0/24" in (root / "etc/systemd/system/volantd.service").read_text()
    )
    setup_json(volant_netns, root, "--uninstall")
    assert snapshot(volant_netns, root) == before


def iptables_rules(ns: NetworkNamespace) -> str:
    """``iptables -S`` of the filter and nat tables in ``ns``."""
    listing = ""
    for table in ("filter", "nat"):
        child = ns.popen(["iptables", "-w", "-t", table, "-S"], stdout=subprocess.PIPE, text=True)
        listing += child.communicate(timeout=30)[0]
        assert child.returncode == 0
    return listing


@pytest.mark.skipif(
    shutil.which("iptables") is None, reason="iptables is not installed (apt-get install iptables)"
)
def test_iptables_is_used_where_nft_is_missing(
    volant_netns: NetworkNamespace, root: Path, tmp_path: Path
) -> None:
    """With iptables but no nft on PATH: the masquerade and forward rules go in with iptables (ahead
    of a DROP rule already in FORWARD), a second run changes nothing, --uninstall removes them."""
    ns = volant_netns
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "iptables").symlink_to(shutil.which("iptables") or "")
    env = {**os.environ, "PATH": str(bin_dir)}
    child = ns.popen(["iptables", "-w", "-A", "FORWARD", "-j", "DROP"])
    assert child.wait(timeout=30) == 0
    before = iptables_rules(ns)

    status, _, err = setup(ns, root, env=env)
    assert status == 0, err
    rules = iptables_rules(ns).splitlines()
    assert (
        "-A POSTROUTING -s 192.168.127.0/24 ! -o vbr0 -m comment --comment volant-setup -j MASQUERADE"
        in rules
    )
    forward = [rule for rule in rules if rule.startswith("-A FORWARD")]
    assert forward[0] == "-A FORWARD -i vbr0 -m comment --comment volant-setup -j ACCEPT"
    assert forward[-1] == "-A FORWARD -j DROP"
    assert not (root / "etc/volant/setup.nft").exists()
    set_up = (iptables_rules(ns), snapshot_without_nft(ns, root))

    status, out, err = setup(ns, root, "-o", "json", env=env)
    assert status == 0 and json.loads(out)["done"] == [], err
    assert (iptables_rules(ns), snapshot_without_nft(ns, root)) == set_up

    status, _, err = setup(ns, root, "--uninstall", env=env)
    assert status == 0, err
    assert iptables_rules(ns) == before
    assert not files(root)
    assert "vbr0" not in links(ns)


def snapshot_without_nft(ns: NetworkNamespace, root: Path) -> dict[str, Any]:
    """:func:`snapshot` but the nft ruleset (iptables-nft keeps its own tables there)."""
    return {"links": links(ns), "sysctls": sysctls(ns), "files": files(root)}


def test_the_boot_unit_re_applies_the_setup_on_a_rebooted_host(
    volant_netns: NetworkNamespace, root: Path
) -> None:
    """A fresh namespace with the files of a set-up host stands for the host after a reboot (no bridge,
    ip_forward 0, no rules): the command of volant-setup.service (with --root appended, so that it
    writes under the test's root) brings back the same links, rules and sysctls, and changes no file;
    --uninstall there restores the fresh state."""
    setup_json(volant_netns, root)
    set_up = snapshot(volant_netns, root)
    unit = (root / "etc/systemd/system/volant-setup.service").read_text()
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert argv[:3] == [VOLAR, "setup", "--no-systemctl"]

    with network_namespace() as rebooted:
        pristine = snapshot(rebooted, root)
        assert "vbr0" not in pristine["links"] and pristine["sysctls"]["ipv4/ip_forward"] == "0"
        child = rebooted.popen(
            [*argv, "--root", str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert snapshot(rebooted, root) == set_up
        setup_json(rebooted, root, "--uninstall")
        after = snapshot(rebooted, root)
        assert {key: after[key] for key in ("links", "nft", "sysctls")} == {
            key: pristine[key] for key in ("links", "nft", "sysctls")
        }
        assert after["files"] == {}
    # The host before the reboot: its bridge goes with it.
    volant_netns.ipr.link("del", index=volant_netns.ipr.link_lookup(ifname="vbr0")[0])


def test_a_file_to_write_that_is_a_symlink_is_refused(
    volant_netns: NetworkNamespace, root: Path, tmp_path: Path
) -> None:
    """volantd.service is a link to a file elsewhere: setup refuses (it never writes through a link),
    naming the path; the link's target and the host stay as they were."""
    elsewhere = tmp_path / "elsewhere.service"
    elsewhere.write_text("[Service]\nExecStart=/opt/other\n")
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    (units / "volantd.service").symlink_to(elsewhere)
    before = snapshot(volant_netns, root)
    status, _, err = setup(volant_netns, root)
    assert status != 0 and "volantd.service" in err
    assert elsewhere.read_text() == "[Service]\nExecStart=/opt/other\n"
    assert snapshot(volant_netns, root) == before


def test_a_run_killed_half_way_is_undone_by_uninstall(
    volant_netns: NetworkNamespace, root: Path, tmp_path: Path
) -> None:
    """volar is SIGKILLed as it loads the rules (an ``nft`` first on PATH kills its parent on ``-f``
    and otherwise runs the real one): the record written after each step lets --uninstall undo the
    bridge, address, ip_forward and files it had done; a new run instead would finish the job."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    killer = bin_dir / "nft"
    real = shutil.which("nft")
    killer.write_text(f'#!/bin/sh\nif [ "$1" = -f ]; then kill -9 $PPID; exit 1; fi\nexec {real} "$@"\n')
    killer.chmod(0o755)
    before = snapshot(volant_netns, root)
    killing = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    status, _, _ = setup(volant_netns, root, env=killing)
    assert status == -9
    half = snapshot(volant_netns, root)
    assert half["links"]["vbr0"] == ("bridge", True, ["192.168.127.1/24"])
    assert "volant_setup" not in half["nft"]
    assert setup_json(volant_netns, root, "--uninstall")["undone"]
    assert snapshot(volant_netns, root) == before

    status, _, _ = setup(volant_netns, root, env=killing)
    assert status == -9
    finished = setup_json(volant_netns, root)["done"]  # from where the killed run stopped
    assert finished[0] == "load the NAT and forward rules for 192.168.127.0/24 (nftables)"
    assert all("vbr0" not in step and "ip_forward" not in step for step in finished)
    setup_json(volant_netns, root, "--uninstall")
    assert snapshot(volant_netns, root) == before


def test_setup_creates_the_vmm_user_once_and_uninstall_removes_it(
    volant_netns: NetworkNamespace, root: Path
) -> None:
    """A root with user databases gets the system user VMMs run as (in its kvm group), once; the
    uninstall removes it again."""
    etc = root / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\nkvm:x:104:\n")
    for secret in ("shadow", "gshadow"):
        (etc / secret).write_text("")
        (etc / secret).chmod(0o600)

    done = setup_json(volant_netns, root)["done"]
    assert "create the system user volant-vmm (VMMs run with its groups)" in done
    entry = next(line for line in (etc / "passwd").read_text().splitlines() if line.startswith("volant-vmm:"))
    uid, gid, shell = entry.split(":")[2], entry.split(":")[3], entry.split(":")[6]
    assert int(uid) != 0 and int(gid) != 0 and shell == "/usr/sbin/nologin"
    assert "kvm:x:104:volant-vmm" in (etc / "group").read_text().splitlines()
    assert setup_json(volant_netns, root)["done"] == []

    setup_json(volant_netns, root, "--uninstall")
    assert "volant-vmm" not in (etc / "passwd").read_text()
