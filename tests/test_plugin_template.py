"""The cookiecutter template makes a plugin package of every kind that installs, loads and tests.

Each kind is baked with cookiecutter (as ``cookiecutter cookiecutter-plugin`` would, without
prompts), linted, installed into a fresh venv beside volant-core (a wheel of this checkout), listed
by ``volantd --list-plugins``, and its own tests run there. Then what volantd needs is broken in
the baked code (a method renamed away, a resume that starts over while saying it resumed, a
payload checksum that does not match) and the same tests must fail naming it: the contract test
classes of ``volant_core.testing.contracts`` catch it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

from volant_core.testing.venvs import Venv, make_venv, require_uv

require_uv()

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "cookiecutter-plugin"
#: For each kind: its own files in the package, and a break of what volantd needs (file, text,
#: replacement) with what the failing tests must then say.
KINDS = {
    "hypervisor": (["vmm.py"], ("vmm.py", "    def adopt(", "    def adopted("), "has no method adopt()"),
    "network-mode": (
        ["network.py"],
        ("network.py", "    def detach(", "    def detached("),
        "has no method detach()",
    ),
    "boot-source": (
        ["source.py"],
        ("source.py", "body.seek(start)", "body.seek(0)"),
        "test_resumes_at_the_offset_or_starts_over",
    ),
    "device-driver": (
        ["devices.py"],
        ("devices.py", "    def validate(", "    def validated("),
        "has no method validate()",
    ),
    "seed-builder": (["seed.py"], ("seed.py", "    def build(", "    def built("), "has no method build()"),
    "runtime": (
        ["manifest.json", "payload.cpio.gz"],
        ("manifest.json", '"checksum": "sha256:', '"checksum": "sha256:0'),
        "test_artifacts_shipped_in_the_package_are_there_and_match",
    ),
}


def bake(output: Path, **context: str) -> Path:
    """Bake the template into ``output`` with ``context`` (no prompts); the package's directory."""
    return Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(output), extra_context=context))


def run_tests(venv: Venv, package: Path) -> subprocess.CompletedProcess[str]:
    """The baked package's tests, run by the venv's pytest in the package's directory."""
    return venv.pytest(package, "tests", timeout=300)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_bakes_installs_loads_and_passes_its_tests(
    kind: str, core_wheel: Path, tmp_path: Path
) -> None:
    name = f"tmpl-{kind}"
    package = bake(tmp_path / "baked", plugin_name=name, kind=kind)
    module = f"volant_{name.replace('-', '_')}"
    assert package.name == f"volant-{name}"
    own_files, (broken_file, text, replacement), failure = KINDS[kind]
    assert sorted(p.name for p in (package / module).iterdir() if p.is_file()) == sorted(
        ["__init__.py", "plugin.py", *own_files]
    ), "the package keeps the files of its own kind only"
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", str(package)], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr

    venv = make_venv(tmp_path / "venv", core_wheel, f"{package.name}[test] @ {package.as_uri()}")
    listed = venv.run("volantd", "--list-plugins")
    assert re.search(rf"^{name}\s+loaded\s+volant-{name}\s+0\.1\.0", listed.stdout, re.MULTILINE), (
        listed.stdout
    )

    passed = run_tests(venv, package)
    assert passed.returncode == 0, passed.stdout + passed.stderr

    broken = package / module / broken_file
    assert text in broken.read_text()
    broken.write_text(broken.read_text().replace(text, replacement, 1))
    failed = run_tests(venv, package)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert failure in failed.stdout


@pytest.mark.parametrize(
    ("context", "field"),
    [
        ({"plugin_name": "My VMM"}, "plugin_name"),
        ({"plugin_name": "vmm", "distribution": "volant vmm"}, "distribution"),
        ({"plugin_name": "vmm", "module": "class"}, "module"),
    ],
)
def test_invalid_names_are_refused_naming_the_field_and_nothing_is_written(
    context: dict[str, str], field: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(FailedHookException):
        bake(tmp_path, **context)
    assert f"{field} " in capfd.readouterr().err
    assert list(tmp_path.iterdir()) == []
