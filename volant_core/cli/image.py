"""``volar image``: the guest image (kernel + initramfs) every VM boots by default."""

from __future__ import annotations

from pathlib import Path

import click

from volant_core.cli.progress import task_bars


@click.group("image")
def image() -> None:
    """Build the guest image.

    Example: volar image build
    """


@image.command("build")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="where to build (default: the daemon's cache, <state>/cache/guest)",
)
def build(cache_dir: Path | None) -> None:
    """Build (or reuse) the kernel and initramfs from Debian packages and kestrel.

    Runs on this host, not through the API; volantd finds the result in its cache. On a terminal,
    downloads, unpacking and the initramfs writing show progress bars.

    Example: volar image build
    """
    from volant_core.guest import ensure_guest  # the image builder and the settings: on use
    from volant_core.settings import load_settings

    target = cache_dir or load_settings().cache_dir / "guest"
    with task_bars() as bars:
        artifacts = ensure_guest(target, log=lambda line: click.echo(f"  {line}", err=True), progress=bars)
    click.echo(f"kernel     {artifacts.kernel}")
    click.echo(f"initramfs  {artifacts.initramfs}")
