"""``volar payload``: build a runtime's initramfs layer from a directory and Debian packages."""

from __future__ import annotations

import json
import os
import shlex
import tempfile
from pathlib import Path

import click


@click.group("payload")
def payload() -> None:
    """Build runtime payloads (a runtime's own initramfs layer).

    Example: volar payload build ./site --package nginx-light --manifest manifest.json
    """


@payload.command("build")
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option("--package", "-p", "packages", multiple=True, help="a Debian package to unpack (repeatable)")
@click.option("--target", default="/app", show_default=True, help="guest directory SOURCE is copied to")
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    help="a runtime manifest (JSON) to point at the layer: its initramfs url and checksum are set",
)
@click.option("--entrypoint", help="the workload's command line, written into --manifest")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="where layers are kept (default: the daemon's cache, <state>/cache)",
)
def build(
    source: Path | None,
    packages: tuple[str, ...],
    target: str,
    manifest: Path | None,
    entrypoint: str | None,
    cache_dir: Path | None,
) -> None:
    """Build (or reuse) the layer of SOURCE (copied under --target) and the --package files.

    The same inputs give the same bytes; a layer is kept under its inputs' content hash, so an
    unchanged build is instant. Packages are taken at the versions the host's apt would install,
    without their dependencies (name every package the workload needs that the guest image lacks).
    Prints the layer's path and checksum; with --manifest, writes them (and --entrypoint) into it.

    Example: volar payload build ./site --manifest web.json --entrypoint "python3 -m http.server"
    """
    from volant_core.errors import ValidationError  # the builder and the settings: on use
    from volant_core.guest.payload import PayloadInputs, build_payload
    from volant_core.settings import load_settings

    if entrypoint is not None and manifest is None:
        raise click.UsageError("--entrypoint is written into a manifest: give --manifest FILE too")
    try:
        built = build_payload(
            PayloadInputs(source, packages, target),
            cache_dir or load_settings().cache_dir,
            log=lambda line: click.echo(f"  {line}", err=True),
        )
        if manifest is not None:
            _point_manifest(manifest, built.path, built.checksum, entrypoint)
    except ValidationError as err:
        raise click.ClickException(err.message) from None
    click.echo(f"layer     {built.path}{' (reused)' if built.reused else ''}")
    click.echo(f"checksum  {built.checksum}")


def _point_manifest(path: Path, layer: Path, checksum: str, entrypoint: str | None) -> None:
    """Set the manifest's ``initramfs`` to ``layer`` (and its ``workload.entrypoint``), validated
    before the file is replaced: a manifest that would be invalid is left as it was.
    """
    from volant_core.errors import ValidationError
    from volant_core.manifest import parse_manifest

    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        message = f"--manifest {path}: cannot read it as JSON ({err})"
        raise ValidationError(message, field="manifest") from None
    if not isinstance(document, dict):
        raise ValidationError(f"--manifest {path}: not a JSON object", field="manifest")
    document["initramfs"] = {"url": str(layer), "checksum": checksum}
    if entrypoint is not None:
        document.setdefault("workload", {})["entrypoint"] = shlex.split(entrypoint)
    parse_manifest(document)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(document, indent=2) + "\n")
    os.replace(partial, path)
