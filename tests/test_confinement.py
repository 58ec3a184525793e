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


def test_a_header_without_extensions_or_padding_is_read(policy: ArtifactPolicy, allowed: Path) -> None:
    """The smallest headers (72 bytes for version 2, 104 for version 3) and nothing after them."""
    for version, length in ((2, 72), (3, 104)):
        image = write_qcow2(allowed / f"v{version}.qcow2", version=version)
        image.write_bytes(image.read_bytes()[:length])
        policy.check_image(image, "qcow2", field=FIELD)


@pytest.mark.parametrize(("version", "length"), [(2, 20), (3, 20), (3, 80)])
def test_a_truncated_header_is_refused(
    policy: ArtifactPolicy, allowed: Path, version: int, length: int
) -> None:
    image = write_qcow2(allowed / "cut.qcow2", version=version)
    image.write_bytes(image.read_bytes()[:length])
    assert refused(policy, image) == f"{FIELD}: truncated qcow2 header"


def test_names_that_are_not_utf8_are_followed(policy: ArtifactPolicy, allowed: Path) -> None:
    """File names are bytes: a backing file and a data file whose names are not UTF-8 are found."""
    base = allowed / os.fsdecode(b"base-\xff.img")
    base.write_bytes(b"base")
    data = allowed / os.fsdecode(b"data-\xfe.raw")
    data.write_bytes(b"")
    image = write_qcow2(allowed / "top.qcow2", backing=base.name, backing_format="raw", data_file=data.name)
    policy.check_image(image, "qcow2", field=FIELD)
    data.unlink()
    assert f"the data file of {image}: no such file on the host" in refused(policy, image)


def test_zero_bytes_ending_an_extension_are_not_part_of_the_name(
    policy: ArtifactPolicy, allowed: Path, outside: Path
) -> None:
    """QEMU reads a name (backing file, its format, data file) up to its first zero byte, and so
    does Volant."""
    (allowed / "base.img").write_bytes(b"base")
    image = write_qcow2(
        allowed / "top.qcow2", backing="base.img", backing_format="raw\0", data_file="data.X\0\0"
    )
    (allowed / "data.X").write_bytes(b"")
    policy.check_image(image, "qcow2", field=FIELD)
    write_qcow2(
        image, backing="base.img\0/etc/shadow\0", backing_format="raw", data_file="data.X\0/etc/shadow\0"
    )
    policy.check_image(image, "qcow2", field=FIELD)  # was a ValueError (a 500): "embedded null byte"
    write_qcow2(image, data_file=f"{outside}\0")
    assert f"the data file of {image} is outside" in refused(policy, image)


@pytest.mark.parametrize("length", [8, 61])
def test_an_extension_volant_does_not_read_hides_no_data_file(
    policy: ArtifactPolicy, allowed: Path, outside: Path, length: int
) -> None:
    """Extensions are walked one after the other, each padded to 8 bytes: one QEMU and Volant skip
    (of a length that is a multiple of 8, and of one that is not) does not hide the next."""
    image = write_qcow2(allowed / "top.qcow2", data_file=str(outside), unknown_extension=b"\x01" * length)
    assert f"the data file of {image} is outside" in refused(policy, image)


def test_extensions_after_the_backing_file_name_are_not_read(policy: ArtifactPolicy, allowed: Path) -> None:
    """QEMU reads the header extensions only up to the backing file name: a format declared after
    the name does not count, so a raw backing file is still refused (QEMU would probe it)."""
    (allowed / "base").write_bytes(b"# Disk DescriptorFile")
    image = write_qcow2(
        allowed / "top.qcow2", backing="base", backing_format="raw", name_before_extensions=True
    )
    assert "is used as qcow2 but is not a qcow2 image; declare its format" in refused(policy, image)


@pytest.mark.parametrize("cluster_bits", [9, 16, 21])
def test_extensions_after_the_first_cluster_are_not_read(
    policy: ArtifactPolicy, allowed: Path, outside: Path, cluster_bits: int
) -> None:
    """Extensions that fill the first cluster end there (QEMU needs no end marker then): what
    looks like a data file extension at the start of the next cluster is not one."""
    filler = b"\x01" * ((1 << cluster_bits) - 72 - 8)
    image = write_qcow2(
        allowed / "top.qcow2",
        version=2,
        cluster_bits=cluster_bits,
        unknown_extension=filler,
        data_file=str(outside),
    )
    policy.check_image(image, "qcow2", field=FIELD)


def test_an_extension_ending_the_first_cluster_is_read(policy: ArtifactPolicy, allowed: Path) -> None:
    """The last 8 bytes of the first cluster hold one more extension header (here a data file with
    an empty name, which QEMU cannot open): it is read, and refused."""
    filler = b"\x01" * ((1 << 16) - 72 - 8 - 8)
    image = write_qcow2(allowed / "top.qcow2", version=2, unknown_extension=filler, data_file="")
    assert "names the data file '', which QEMU would not read as a plain file name" in refused(policy, image)


@pytest.mark.parametrize("cluster_bits", [8, 22])
def test_cluster_sizes_qemu_does_not_open_are_refused(
    policy: ArtifactPolicy, allowed: Path, cluster_bits: int
) -> None:
    image = write_qcow2(allowed / "odd.qcow2", cluster_bits=cluster_bits)
    assert refused(policy, image) == (
        f"{FIELD}: qcow2 cluster size 2^{cluster_bits} is not one QEMU opens (2^9 to 2^21); "
        "convert it with qemu-img convert"
    )


def test_a_backing_file_name_is_as_long_as_the_header_says(policy: ArtifactPolicy, allowed: Path) -> None:
    """QEMU reads ``backing file size`` bytes of name, whatever follows them."""
    (allowed / "base.img").write_bytes(b"base")
    image = write_qcow2(allowed / "top.qcow2", backing="base.img.bak", backing_format="raw")
    header = bytearray(image.read_bytes())
    header[16:20] = len("base.img").to_bytes(4, "big")
    image.write_bytes(header)
    policy.check_image(image, "qcow2", field=FIELD)


def test_a_backing_file_name_of_up_to_1023_bytes_is_followed(policy: ArtifactPolicy, allowed: Path) -> None:
    """QEMU's limit: 1023 bytes are followed, a longer name is refused."""
    directory = Path(*["d" * 254] * 4)  # 1,020 bytes with the slashes after each part
    (allowed / directory).mkdir(parents=True)
    (allowed / directory / "img").write_bytes(b"base")
    name = f"{directory}/img"
    assert len(name) == 1023
    image = write_qcow2(allowed / "top.qcow2", backing=name, backing_format="raw")
    policy.check_image(image, "qcow2", field=FIELD)
    write_qcow2(image, backing=f"{name}x", backing_format="raw")
    assert refused(policy, image) == f"{FIELD}: qcow2 backing file name longer than 1023"


def test_a_file_declared_qcow2_must_be_one(policy: ArtifactPolicy, allowed: Path) -> None:
    image = allowed / "plain.img"
    image.write_bytes(b"not an image header")
    assert "is declared qcow2 but is not a qcow2 image; set its format to raw" in refused(policy, image)


def test_a_backing_file_of_undeclared_format_must_be_qcow2(policy: ArtifactPolicy, allowed: Path) -> None:
    (allowed / "base.img").write_bytes(b"# Disk DescriptorFile")  # QEMU would probe its format
    image = write_qcow2(allowed / "top.qcow2", backing="base.img")
    assert (
        "is used as qcow2 but is not a qcow2 image; declare its format (qemu-img rebase -F raw)"
    ) in refused(policy, image)


def test_other_backing_formats_are_refused(policy: ArtifactPolicy, allowed: Path) -> None:
    (allowed / "base.vmdk").write_bytes(b"")
    image = write_qcow2(allowed / "top.qcow2", backing="base.vmdk", backing_format="vmdk")
    assert "has format 'vmdk'; Volant attaches raw and qcow2 only" in refused(policy, image)


@pytest.mark.parametrize("name", ['json:{"file.filename":"/etc/shadow"}', "nbd:localhost:10809", ""])
@pytest.mark.parametrize("what", ["backing file", "data file"])
def test_names_qemu_reads_as_protocols_are_refused(
    policy: ArtifactPolicy, allowed: Path, name: str, what: str
) -> None:
    image = allowed / "top.qcow2"
    write_qcow2(image, **{"backing" if what == "backing file" else "data_file": name})
    assert refused(policy, image) == (
        f"{FIELD}: {image} names the {what} {name!r}, which QEMU would not read as a plain file name; "
        "give it a path (qemu-img rebase -u -b PATH)"
    )


def test_a_colon_after_the_first_slash_is_part_of_a_file_name(policy: ArtifactPolicy, allowed: Path) -> None:
    """QEMU reads ``prefix:`` as a protocol only before the first ``/``."""
    (allowed / "2026-12-03T09:30").mkdir()
    (allowed / "2026-12-03T09:30" / "base.img").write_bytes(b"base")
    image = write_qcow2(allowed / "top.qcow2", backing="./2026-12-03T09:30/base.img", backing_format="raw")
    policy.check_image(image, "qcow2", field=FIELD)


def test_a_chain_deeper_than_the_limit_is_refused(policy: ArtifactPolicy, allowed: Path) -> None:
    write_qcow2(allowed / "0.qcow2")
    for depth in range(1, MAX_CHAIN_DEPTH + 2):
        write_qcow2(allowed / f"{depth}.qcow2", backing=f"{depth - 1}.qcow2", backing_format="qcow2")
    policy.check_image(allowed / f"{MAX_CHAIN_DEPTH}.qcow2", "qcow2", field=FIELD)
    assert refused(policy, allowed / f"{MAX_CHAIN_DEPTH + 1}.qcow2").endswith(
        f"has a backing chain deeper than {MAX_CHAIN_DEPTH}; flatten it with qemu-img convert"
    )


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
    assert caught.value.message.startswith(f"{FIELD}: {location} ")  # the location as the user wrote it
    assert "VOLANT_ARTIFACT_DIRS" in caught.value.message or "not an absolute path" in caught.value.message


def test_a_refusal_lists_the_allowed_directories(tmp_path: Path) -> None:
    policy = ArtifactPolicy([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ValidationError) as caught:
        policy.resolve("/etc/shadow", field=FIELD)
    assert caught.value.message == (
        f"{FIELD}: /etc/shadow is outside the directories Volant reads images from ({tmp_path / 'a'}, "
        f"{tmp_path / 'b'}); move it under one of them or add its directory to VOLANT_ARTIFACT_DIRS"
    )


def test_a_path_that_cannot_be_resolved_is_refused_naming_the_field(
    policy: ArtifactPolicy, allowed: Path
) -> None:
    """A link loop (as a location and as a backing file) and a path through a regular file."""
    (allowed / "loop").symlink_to("loop")
    (allowed / "plain.img").write_bytes(b"")
    image = write_qcow2(allowed / "top.qcow2", backing="loop", backing_format="raw")
    assert refused(policy, image).startswith(
        f"{FIELD}: the backing file 'loop' of {image} cannot be resolved ("
    )
    for location in (f"{allowed}/loop", f"file://{allowed}/loop", f"{allowed}/plain.img/x"):
        with pytest.raises(ValidationError) as caught:
            policy.resolve(location, field=FIELD)
        assert caught.value.field == FIELD
        assert caught.value.message.startswith(f"{FIELD}: {location} cannot be resolved (")


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


def opening_refused(path: Path) -> str:
    """The message with which :func:`open_regular` refuses ``path``."""
    with pytest.raises(ValidationError) as caught:
        open_regular(path, field=FIELD)
    assert caught.value.field == FIELD
    return caught.value.message


def test_only_regular_files_are_read(policy: ArtifactPolicy, allowed: Path, outside: Path) -> None:
    fifo = allowed / "pipe.img"
    os.mkfifo(fifo)
    with pytest.raises(ValidationError, match="is not a regular file; name an image file") as caught:
        policy.resolve(str(fifo), field=FIELD)
    assert caught.value.field == FIELD
    # returns at once: no writer is waited for
    assert opening_refused(fifo) == f"{FIELD}: {fifo} is a FIFO; Volant attaches image files only"
    assert refused(policy, fifo).endswith("is a FIFO; Volant attaches image files only")  # checked again
    assert opening_refused(allowed) == f"{FIELD}: {allowed} is a directory; Volant attaches image files only"
    (allowed / "link.img").symlink_to(outside)
    assert opening_refused(allowed / "link.img").endswith(
        "link.img is a symbolic link; name the image file itself"
    )
    missing = allowed / "gone.img"  # removed after it was checked
    assert opening_refused(missing) == (
        f"{FIELD}: {missing} cannot be read (No such file or directory); name the image file itself"
    )
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
    with pytest.raises(ValueError, match=f"{key} is set by Volant itself"):
        check_user_cmdline(f"{key}=evil=1")  # the key ends at the first '='


def test_a_refused_argument_list_says_what_is_allowed() -> None:
    with pytest.raises(ValueError) as caught:
        check_user_cmdline("quiet\tloglevel=3")
    assert str(caught.value) == (
        "must be printable ASCII arguments separated by spaces (no control characters, tabs, "
        "newlines or non-ASCII characters)"
    )


@pytest.mark.parametrize("value", ["a\x01b", "a\tb", "a\nvolant.name=x", "caf\u00e9=1", "x=\x7f"])
def test_the_users_arguments_are_printable_ascii(value: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        check_user_cmdline(value)


def test_the_users_own_knobs_stay_allowed() -> None:
    assert check_user_cmdline("volant.console=off quiet loglevel=3") == "volant.console=off quiet loglevel=3"
    # Only a leading quote is dropped before the key is read: another key that merely ends in a
    # reserved one is the user's, while the reserved key itself is refused.
    assert check_user_cmdline("Xvolant.name=foo") == "Xvolant.name=foo"
    with pytest.raises(ValueError) as refused:
        check_user_cmdline("volant.name=foo")
    assert str(refused.value) == (
        "volant.name is set by Volant itself; remove it (reserved: volant.dns, volant.gw, volant.hostname, "
        "volant.ip, volant.manifest, volant.name, volant.rootfs, volant.runtime)"
    )


@pytest.mark.parametrize("argument", ["", "a b", "volant.ip=10.0.0.2/24\n", "x=\u00e9", "\t"])
def test_a_plugin_argument_is_one_printable_word(argument: str) -> None:
    with pytest.raises(ValueError, match="non-empty printable ASCII without whitespace"):
        check_argument(argument)
    assert check_argument("volant.ip=10.0.0.2/24") == "volant.ip=10.0.0.2/24"


def test_the_command_line_must_fit_the_guest_kernel() -> None:
    fits = ["a" * 1000, "b" * (MAX_CMDLINE_BYTES - 1 - 1001)]  # 2047 bytes with the space
    check_length(fits)
    with pytest.raises(
        ValidationError, match="would be 2048 bytes, but the guest kernel keeps 2047; shorten"
    ) as caught:
        check_length([*fits[:1], fits[1] + "c"])
    assert caught.value.field == "kernel_cmdline"
