"""``volant_core.guest.payload``: a runtime's initramfs layer from a directory and Debian packages,
the same bytes for the same inputs, cached by the inputs' content, refusing what it cannot carry."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from volant_core.errors import ValidationError
from volant_core.guest.cpio import initramfs_files
from volant_core.guest.payload import PayloadInputs, build_payload
from volant_core.testing.cli import run_volar


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A source directory: a page, an executable script in a subdirectory, a link to a host file."""
    source = tmp_path / "site"
    (source / "bin").mkdir(parents=True)
    (source / "index.html").write_text("<h1>hello</h1>\n")
    (source / "bin" / "serve").write_text("#!/bin/sh\nexec python3 -m http.server\n")
    (source / "bin" / "serve").chmod(0o755)
    (source / "secret").symlink_to("/etc/passwd")
    return source


def test_the_layer_holds_the_directory_under_the_target(site: Path, tmp_path: Path) -> None:
    payload = build_payload(PayloadInputs(site, target="/srv/www"), tmp_path / "cache", log=lambda _: None)
    files = initramfs_files(payload.path.read_bytes())
    assert files["/srv/www/index.html"] == b"<h1>hello</h1>\n"
    assert files["/srv/www/bin/serve"].startswith(b"#!/bin/sh")
    raw = gzip.decompress(payload.path.read_bytes())
    assert b"srv/www/secret\0" in raw and b"/etc/passwd" in raw  # kept as a link in the guest ...
    assert "/srv/www/secret" not in files and b"root:x:0:0" not in raw  # ... never followed on the host
    assert payload.checksum.startswith("sha256:") and not payload.reused


def test_the_same_inputs_give_the_same_bytes_and_a_second_build_reuses_them(
    site: Path, tmp_path: Path
) -> None:
    first = build_payload(PayloadInputs(site), tmp_path / "one", log=lambda _: None)
    elsewhere = build_payload(PayloadInputs(site), tmp_path / "two", log=lambda _: None)
    assert first.path.read_bytes() == elsewhere.path.read_bytes()
    os.utime(site / "index.html", (0, 0))  # timestamps are not inputs
    again = build_payload(PayloadInputs(site), tmp_path / "one", log=lambda _: None)
    assert again.reused and again.path == first.path and again.checksum == first.checksum


def test_a_changed_file_or_mode_is_a_new_layer(site: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = build_payload(PayloadInputs(site), cache, log=lambda _: None)
    (site / "index.html").write_text("<h1>changed</h1>\n")
    changed = build_payload(PayloadInputs(site), cache, log=lambda _: None)
    (site / "bin" / "serve").chmod(0o644)
    mode_changed = build_payload(PayloadInputs(site), cache, log=lambda _: None)
    assert len({first.checksum, changed.checksum, mode_changed.checksum}) == 3
    assert not changed.reused and not mode_changed.reused


@pytest.mark.parametrize("target", ["/", "relative", "/volant/app", "/app/../init", "/dev/x"])
def test_a_target_outside_the_guest_tree_or_in_the_base_images_own_is_refused(
    site: Path, tmp_path: Path, target: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        build_payload(PayloadInputs(site, target=target), tmp_path / "cache", log=lambda _: None)
    assert refused.value.field == "target"
    assert not (tmp_path / "cache").exists()


def test_a_special_file_or_a_missing_directory_is_refused_and_nothing_is_written(
    site: Path, tmp_path: Path
) -> None:
    os.mkfifo(site / "pipe")
    with pytest.raises(ValidationError, match="pipe: not a regular file") as refused:
        build_payload(PayloadInputs(site), tmp_path / "cache", log=lambda _: None)
    assert refused.value.field == "source"
    with pytest.raises(ValidationError, match="no such directory"):
        build_payload(PayloadInputs(tmp_path / "absent"), tmp_path / "cache", log=lambda _: None)
    assert not (tmp_path / "cache").exists()


@pytest.mark.usefixtures("apt_download")
def test_debian_packages_are_unpacked_at_their_merged_usr_paths_without_their_docs(tmp_path: Path) -> None:
    payload = build_payload(PayloadInputs(None, ("hello",)), tmp_path / "cache", log=lambda _: None)
    files = initramfs_files(payload.path.read_bytes())
    assert files["/usr/bin/hello"].startswith(b"\x7fELF")
    assert not [path for path in files if path.startswith("/usr/share/doc/")]
    assert list((tmp_path / "cache" / "payloads").iterdir()) == [payload.path]  # no scratch left


@pytest.mark.usefixtures("apt_download")
def test_an_unknown_package_is_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no-such-package-here") as refused:
        build_payload(PayloadInputs(None, ("no-such-package-here",)), tmp_path / "cache", log=lambda _: None)
    assert refused.value.field == "packages"


def test_volar_writes_the_layer_into_a_manifest_only_when_the_result_is_valid(
    site: Path, tmp_path: Path
) -> None:
    """``volar payload build --manifest``: a manifest the change would make invalid is left as it
    was (exit 1, naming the field); ``--entrypoint`` without a manifest is refused (nothing to write it in).
    """
    manifest = tmp_path / "web.json"
    original = '{"name": "web", "version": "1.0.0", "workload": {"type": "http", "entrypoint": ["x"]}}\n'
    manifest.write_text(original)
    cache = ["--cache-dir", str(tmp_path / "cache")]
    broken = run_volar(
        "http://127.0.0.1:9", "payload", "build", str(site), "--manifest", str(manifest), *cache
    )
    assert broken.returncode == 1 and "workload.base_url" in broken.stderr, broken.stderr
    assert manifest.read_text() == original
    alone = run_volar("http://127.0.0.1:9", "payload", "build", str(site), "--entrypoint", "x", *cache)
    assert alone.returncode == 2 and "--manifest" in alone.stderr
