"""The artifact policy, the qcow2 header inspector and the kernel command line rules, on real files
(qcow2 headers written byte by byte, symbolic links, a FIFO) without a daemon."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from volant_core.confinement import ArtifactPolicy, local_path
from volant_core.errors import ValidationError
from volant_core.images import MAX_CHAIN_DEPTH, open_regular
from volant_core.kernel_cmdline import MAX_CMDLINE_BYTES, check_argument, check_length, check_user_cmdline
from volant_core.manifest import ArtifactRef
from volant_core.settings import load_settings
from volant_core.testing.qcow2 import write_qcow2

FIELD = "disks[0].source"


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    """The one allowed directory."""
    directory = tmp_path / "images"
    directory.mkdir()
    return directory


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A raw image outside the allowed directory."""
    path = tmp_path / "outside.img"
    path.write_bytes(b"secret")
    return path


@pytest.fixture
def policy(allowed: Path) -> ArtifactPolicy:
    """A policy allowing :func:`allowed` only."""
    return ArtifactPolicy([allowed])


def refused(policy: ArtifactPolicy, image: Path) -> str:
    """The message with which ``policy`` refuses ``image`` declared qcow2."""
    with pytest.raises(ValidationError) as caught:
        policy.check_image(image, "qcow2", field=FIELD)
    assert caught.value.field == FIELD
    assert caught.value.message.startswith(f"{FIELD}: ")
    return caught.value.message


@pytest.mark.parametrize("version", [2, 3])
def test_a_qcow2_chain_inside_the_allowed_directories_passes(
    policy: ArtifactPolicy, allowed: Path, version: int
) -> None:
    (allowed / "base.img").write_bytes(b"base")
    write_qcow2(allowed / "middle.qcow2", version=version, backing="base.img", backing_format="raw")
    write_qcow2(allowed / "top.qcow2", version=version, backing=str(allowed / "middle.qcow2"))
    policy.check_image(allowed / "top.qcow2", "qcow2", field=FIELD)
    policy.check_image(allowed / "base.img", "raw", field=FIELD)  # raw images are not inspected


@pytest.mark.parametrize("version", [2, 3])
def test_a_backing_file_outside_is_refused(
    policy: ArtifactPolicy, allowed: Path, outside: Path, version: int
) -> None:
    image = write_qcow2(allowed / "top.qcow2", version=version, backing=str(outside), backing_format="raw")
    message = refused(policy, image)
    assert f"the backing file {str(outside)!r} of {image}" in message
    assert "is outside the directories Volant reads images from" in message
    assert "VOLANT_ARTIFACT_DIRS" in message


def test_a_relative_backing_name_is_resolved_from_the_images_directory(
    policy: ArtifactPolicy, allowed: Path, outside: Path
) -> None:
    image = write_qcow2(allowed / "top.qcow2", backing=f"../{outside.name}", backing_format="raw")
    assert f"(resolved: {outside})" in refused(policy, image)


def test_a_backing_link_leaving_the_directory_is_refused(
    policy: ArtifactPolicy, allowed: Path, outside: Path
) -> None:
    (allowed / "base.img").symlink_to(outside)
    image = write_qcow2(allowed / "top.qcow2", backing="base.img", backing_format="raw")
    assert f"(resolved: {outside})" in refused(policy, image)


def test_an_external_data_file_outside_is_refused(
    policy: ArtifactPolicy, allowed: Path, outside: Path
) -> None:
    image = write_qcow2(allowed / "top.qcow2", data_file=str(outside))
    assert f"the data file of {image}" in refused(policy, image)
    write_qcow2(allowed / "inside.qcow2", data_file="data.raw")
    (allowed / "data.raw").write_bytes(b"")
    policy.check_image(allowed / "inside.qcow2", "qcow2", field=FIELD)


def test_a_file_declared_qcow2_must_be_one(policy: ArtifactPolicy, allowed: Path) -> None:
    image = allowed / "plain.img"
    image.write_bytes(b"not an image header")
    assert "is declared qcow2 but is not a qcow2 image; set its format to raw" in refused(policy, image)


def test_a_backing_file_of_undeclared_format_must_be_qcow2(policy: ArtifactPolicy, allowed: Path) -> None:
    (allowed / "base.img").write_bytes(b"# Disk DescriptorFile")  # QEMU would probe its format
    image = write_qcow2(allowed / "top.qcow2", backing="base.img")
    assert "is used as qcow2 but is not a qcow2 image; declare its format" in refused(policy, image)


def test_other_backing_formats_are_refused(policy: ArtifactPolicy, allowed: Path) -> None:
    (allowed / "base.vmdk").write_bytes(b"")
    image = write_qcow2(allowed / "top.qcow2", backing="base.vmdk", backing_format="vmdk")
    assert "has format 'vmdk'" in refused(policy, image)


@pytest.mark.parametrize("name", ['json:{"file.filename":"/etc/shadow"}', "nbd:localhost:10809", ""])
def test_backing_names_qemu_reads_as_protocols_are_refused(
    policy: ArtifactPolicy, allowed: Path, name: str
) -> None:
    image = allowed / "top.qcow2"
    write_qcow2(image, backing=name or "x")
    if not name:  # a backing offset with an empty name
        image.write_bytes(image.read_bytes()[:-1])
    assert "which QEMU would not read as a plain file name" in refused(policy, image)


def test_a_chain_deeper_than_the_limit_is_refused(policy: ArtifactPolicy, allowed: Path) -> None:
    write_qcow2(allowed / "0.qcow2")
    for depth in range(1, MAX_CHAIN_DEPTH + 2):
        write_qcow2(allowed / f"{depth}.qcow2", backing=f"{depth - 1}.qcow2", backing_format="qcow2")
    policy.check_image(allowed / f"{MAX_CHAIN_DEPTH}.qcow2", "qcow2", field=FIELD)
    assert "backing chain deeper than" in refused(policy, allowed / f"{MAX_CHAIN_DEPTH + 1}.qcow2")


def test_a_loop_in_the_chain_ends_at_the_limit(policy: ArtifactPolicy, allowed: Path) -> None:
    image = write_qcow2(allowed / "self.qcow2", backing="self.qcow2", backing_format="qcow2")
    assert "backing chain deeper than" in refused(policy, image)


def test_unsupported_qcow2_versions_are_refused(policy: ArtifactPolicy, allowed: Path) -> None:
    image = write_qcow2(allowed / "v4.qcow2", version=4)
    assert "qcow2 version 4 is not supported" in refused(policy, image)


@pytest.mark.parametrize(
    "location",
    ["/etc/shadow", "file:///etc/passwd", "/proc/self/environ", "/dev/null", "relative/disk.img"],
)
def test_locations_outside_or_relative_are_refused(policy: ArtifactPolicy, location: str) -> None:
    with pytest.raises(ValidationError) as caught:
        policy.check_all([ArtifactRef(FIELD, location, "raw")])
    assert caught.value.field == FIELD
    assert "VOLANT_ARTIFACT_DIRS" in caught.value.message or "not an absolute path" in caught.value.message


def test_locations_are_resolved_before_they_are_compared(
    policy: ArtifactPolicy, allowed: Path, outside: Path
) -> None:
    (allowed / "link.img").symlink_to(outside)
    with pytest.raises(ValidationError, match=rf"\(resolved: {outside}\) is outside"):
        policy.resolve(str(allowed / "link.img"), field=FIELD)
    with pytest.raises(ValidationError, match="is outside"):
        policy.resolve(f"{allowed}/../{outside.name}", field=FIELD)
    assert policy.resolve(f"file://{allowed}/later.img", field=FIELD, strict=False) == allowed / "later.img"
    with pytest.raises(ValidationError, match="no such file on the host"):
        policy.resolve(str(allowed / "later.img"), field=FIELD)
    assert policy.resolve("https://example.org/disk.img", field=FIELD) is None


def test_only_regular_files_are_read(policy: ArtifactPolicy, allowed: Path, outside: Path) -> None:
    fifo = allowed / "pipe.img"
    os.mkfifo(fifo)
    with pytest.raises(ValidationError, match="is not a regular file"):
        policy.resolve(str(fifo), field=FIELD)
    with pytest.raises(ValidationError, match="is a FIFO"):
        open_regular(fifo, field=FIELD)  # returns at once: no writer is waited for
    (allowed / "link.img").symlink_to(outside)
    with pytest.raises(ValidationError, match="is a symbolic link"):
        open_regular(allowed / "link.img", field=FIELD)
    with open_regular(outside, field=FIELD) as stream:
        assert stream.read() == b"secret"


def test_local_paths_are_read_the_way_boot_sources_read_them() -> None:
    assert local_path("/srv/a.img") == Path("/srv/a.img")
    assert local_path("file:///srv/a.img") == Path("/srv/a.img")
    assert local_path("FILE:///srv/a.img") == Path("/srv/a.img")
    assert local_path("http://host/a.img") is None


def test_the_default_directories_are_the_cache_and_the_images_directory(tmp_path: Path) -> None:
    settings = load_settings({}, state_dir=tmp_path)
    assert settings.artifact_dirs == (tmp_path / "cache", tmp_path / "images")
    assert ArtifactPolicy.from_settings(settings).directories == settings.artifact_dirs
    chosen = load_settings({"VOLANT_ARTIFACT_DIRS": "/srv/images, /srv/more"}, state_dir=tmp_path)
    assert chosen.artifact_dirs == (Path("/srv/images"), Path("/srv/more"))
    downloads = ArtifactPolicy.from_settings(chosen).directories
    assert downloads == (*chosen.artifact_dirs, tmp_path / "cache" / "artifacts")  # verified downloads
    with pytest.raises(ValidationError, match=r"VOLANT_ARTIFACT_DIRS: .*images is not an absolute path"):
        load_settings({"VOLANT_ARTIFACT_DIRS": "/srv/a,images"}, state_dir=tmp_path)


@pytest.mark.parametrize(
    "key", ["volant.name", "volant.runtime", "volant.manifest", "volant.rootfs", "volant.ip", "volant.gw"]
)
def test_the_user_may_not_set_volants_own_keys(key: str) -> None:
    with pytest.raises(ValueError, match=f"{key} is set by Volant itself"):
        check_user_cmdline(f"quiet {key}=evil")
    with pytest.raises(ValueError, match=f"{key} is set by Volant itself"):
        check_user_cmdline(f'"{key}=evil"')


@pytest.mark.parametrize("value", ["a\x01b", "a\tb", "a\nvolant.name=x", "caf\u00e9=1", "x=\x7f"])
def test_the_users_arguments_are_printable_ascii(value: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        check_user_cmdline(value)


def test_the_users_own_knobs_stay_allowed() -> None:
    assert check_user_cmdline("volant.console=off quiet loglevel=3") == "volant.console=off quiet loglevel=3"


@pytest.mark.parametrize("argument", ["", "a b", "volant.ip=10.0.0.2/24\n", "x=\u00e9", "\t"])
def test_a_plugin_argument_is_one_printable_word(argument: str) -> None:
    with pytest.raises(ValueError, match="non-empty printable ASCII without whitespace"):
        check_argument(argument)
    assert check_argument("volant.ip=10.0.0.2/24") == "volant.ip=10.0.0.2/24"


def test_the_command_line_must_fit_the_guest_kernel() -> None:
    fits = ["a" * 1000, "b" * (MAX_CMDLINE_BYTES - 1 - 1001)]  # 2047 bytes with the space
    check_length(fits)
    with pytest.raises(ValidationError, match="would be 2048 bytes") as caught:
        check_length([*fits[:1], fits[1] + "c"])
    assert caught.value.field == "kernel_cmdline"
