"""kestrel's side of the cloud-init seed, on the host: files written under a root as the plan says,
commands run through /bin/sh with their output on the console, what is not applied said on the
console, and a root file system with its own cloud-init left to it. (The guest boots of
plugins/volant-cloudinit check the whole path on real seeds.)
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from volant_core.agent import seed
from volant_core.agent.constants import SEED_PLAN_FILE
from volant_core.seedplan import seed_plan


def entry(path: str, data: bytes, **fields: Any) -> dict[str, Any]:
    return {
        "path": path,
        "content_b64": base64.b64encode(data).decode(),
        "permissions": 0o644,
        "owner": "root:root",
        "append": False,
        **fields,
    }


def test_write_files_lands_under_the_root_with_mode_owner_and_append(tmp_path: Path, capfd: Any) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:4242:4343::/srv:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:4343:\n")
    (root / "etc" / "log").write_text("first\n")
    seed.write_files(
        root,
        [
            entry("/srv/deep/config.ini", b"a=1\n", permissions=0o600, owner="app:app"),
            entry("/etc/log", b"second\n", append=True),
            entry("/etc/ghost", b"x", owner="nobody-here"),
        ],
    )
    written = root / "srv" / "deep" / "config.ini"
    assert written.read_bytes() == b"a=1\n" and written.stat().st_mode & 0o7777 == 0o600
    if os.geteuid() == 0:
        assert (written.stat().st_uid, written.stat().st_gid) == (4242, 4343)
    assert (root / "etc" / "log").read_text() == "first\nsecond\n"
    assert (root / "etc" / "ghost").stat().st_uid == os.geteuid()
    assert "owner 'nobody-here' unknown in the guest; left to root" in capfd.readouterr().err
    assert not (tmp_path / "srv").exists(), "a file was written outside the root"


def test_commands_run_through_sh_with_their_output_on_the_console(tmp_path: Path, capfd: Any) -> None:
    out = tmp_path / "out"
    seed.run_shell(f"echo to-console; echo to-file > {out}; exit 3", None, "runcmd[0]")
    assert out.read_text() == "to-file\n"
    console = capfd.readouterr().err
    assert "to-console" in console and "runcmd[0] exited with 3" in console


def mounted(tmp_path: Path, user_data: str) -> Path:
    """A directory standing in for the mounted seed, holding ``user_data``'s plan."""
    mount = tmp_path / "seed"
    mount.mkdir()
    (mount / SEED_PLAN_FILE).write_text(json.dumps(seed_plan(user_data, "", None)))
    return mount


CONFIG = "#cloud-config\npackages: [nginx]\nwrite_files: [{path: /etc/seeded, content: hello}]\n"


def test_the_plan_is_applied_to_the_workload_root_and_what_it_leaves_is_said(
    tmp_path: Path, capfd: Any
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    seed.apply_mounted_seed(mounted(tmp_path, CONFIG), "", str(root))
    assert (root / "etc" / "seeded").read_text() == "hello"
    assert "cloud-config key 'packages' not applied" in capfd.readouterr().err


def test_a_root_with_its_own_cloud_init_reads_the_seed_itself(tmp_path: Path, capfd: Any) -> None:
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "cloud-init").write_text("#!/bin/sh\n")
    seed.apply_mounted_seed(mounted(tmp_path, CONFIG), "", str(root))
    assert not (root / "etc" / "seeded").exists(), "kestrel applied what the image's cloud-init will"
    assert "has its own cloud-init" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("cmdline", "owned"),
    [("", False), ("volant.ip=10.0.0.5/24 volant.gw=10.0.0.1", True), ("volant.net=dhcp", True)],
)
def test_the_network_mode_owns_eth0_when_it_configures_it(cmdline: str, owned: bool) -> None:
    assert seed.network_mode_owns_nic(cmdline) is owned
