"""What a guest boots: kernel, the layered initramfs, its disks and the kernel command line.

The base image is the one ``volantd`` is configured with (``VOLANT_KERNEL`` /
``VOLANT_INITRAMFS``) or, by default, the one :func:`volant_core.guest.ensure_guest`
builds. A runtime's own ``initramfs`` is fetched through the boot sources and
appended to the base; the manifest rides on the kernel command line when it is
small, else in one more appended layer at ``/volant/manifest.json``. The last layer
always holds the VM's agent token (:mod:`volant_core.agent_token`), so every VM gets
an initramfs of its own, ``vm_dir/initramfs.img``, readable by its owner only.

A runtime's ``rootfs`` is fetched the same way and becomes the first disk (the guest sees
``/dev/vda``): kestrel still boots from the base image, mounts it and runs the workload
inside it. By default it is attached read-only and mounted under a RAM overlay, so the
image stays as fetched and one copy serves every VM (ADR 0017); a persistent root
(``rootfs.persistent``, or the VM's ``persistent_root``) is an image of the VM's own,
attached and mounted read-write (``volant.rootfs.persistent=1``). The manifest's ``disks``
follow in their order; a writable one is an image of the VM's own too, a read-only one is
used where it was fetched. A VM's own images are made on its first boot, kept across
restarts and removed with the VM (:mod:`volant_core.orchestrator.writable`, ADR 0037).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from volant_core.agent.constants import (
    AGENT_TOKEN_FILE,
    CMDLINE_NAME_KEY,
    CMDLINE_ROOTFS_KEY,
    CMDLINE_ROOTFS_PERSISTENT_KEY,
    CMDLINE_RUNTIME_KEY,
    ROOTFS_DEVICE,
)
from volant_core.agent_token import vm_token
from volant_core.artifact_cache import ArtifactCache
from volant_core.confinement import ArtifactPolicy
from volant_core.descriptors import BootSourceDescriptor
from volant_core.errors import LaunchError, ValidationError
from volant_core.guest import BASE_KERNEL_ARGS, GuestArtifacts, ensure_guest, file_layer, newest_build
from volant_core.kernel_cmdline import check_length
from volant_core.launch import DiskRole, DiskSpec
from volant_core.manifest import (
    CMDLINE_MANIFEST_BUDGET,
    ArtifactRef,
    Manifest,
    encode_for_guest,
    manifest_json,
)
from volant_core.orchestrator.writable import PARTIAL_SUFFIX, WRITABLE_PARTIALS, WritableImage, discard_root
from volant_core.registry import Registry
from volant_core.settings import Settings

log = logging.getLogger(__name__)

#: Guest path kestrel reads the manifest from when it is not on the command line.
MANIFEST_LAYER_PATH = "/volant/manifest.json"
#: ``progress(field, url, done, total)``: how the download of the artifact a field names goes.
MediaProgress = Callable[[str, str, int, "int | None"], None]


@dataclass(frozen=True)
class BootPlan:
    """Boot media of one launch."""

    kernel: Path
    initramfs: Path
    kernel_args: tuple[str, ...]
    disks: tuple[DiskSpec, ...] = ()


class BootMedia:
    """Resolves the base image once and prepares each VM's boot media in its own directory."""

    def __init__(
        self, settings: Settings, sources: Registry[BootSourceDescriptor], log: Callable[[str], None]
    ) -> None:
        self._settings = settings
        self._sources = sources
        self._log = log
        self._policy = ArtifactPolicy.from_settings(settings)
        self._lock = threading.Lock()
        self._base: tuple[Path, Path] | None = None
        self.cache = ArtifactCache(settings.download_dir)

    def base_image(self) -> tuple[Path, Path]:
        """``(kernel, initramfs)`` every guest starts from, resolved at the first boot that needs it
        (never at adoption: ADR 0030): the configured files, else the built guest image, built on
        first use. When building fails (apt offline after an upgrade, say), the newest image built
        before is used, with a warning; LaunchError saying how to get one when there is none.
        """
        with self._lock:
            if self._base is None:
                kernel, initramfs = self._settings.kernel, self._settings.initramfs
                if kernel is None or initramfs is None:
                    built = self._guest_image()
                    kernel, initramfs = kernel or built.kernel, initramfs or built.initramfs
                self._base = (kernel, initramfs)
            return self._base

    def _guest_image(self) -> GuestArtifacts:
        """The guest image of the cache: built (or reused) for the current inputs, else the newest
        one built before when that build fails.
        """
        cache = self._settings.cache_dir / "guest"
        try:
            return ensure_guest(cache, log=self._log)
        except Exception as err:  # apt, dpkg-deb, the network, the disk: any of them may fail
            previous = newest_build(cache)
            if previous is None:
                raise LaunchError(
                    f"no guest image: building it in {cache} failed ({err}) and none was built before; "
                    "fix the cause and run `volar image build`, or set VOLANT_KERNEL and VOLANT_INITRAMFS"
                ) from err
            log.warning(
                "building the guest image failed (%s); booting the one built before, %s, until volantd "
                "restarts (run `volar image build` to build the current one)",
                err,
                previous.kernel.parent,
            )
            return previous

    def sweep_partials(self) -> None:
        """Remove the partial files a killed volantd left: unresumable ones in the download cache
        (resumable downloads stay, :meth:`ArtifactCache.sweep`), and the initramfs and the VMs' own
        images being written in the VMs' directories.
        """
        removed = self.cache.sweep()
        for pattern in (f"*/initramfs.img{PARTIAL_SUFFIX}", *WRITABLE_PARTIALS):
            for partial in self._settings.runtime_dir.glob(pattern):
                partial.unlink(missing_ok=True)
                removed.append(partial)
        if removed:
            log.info("removed %d partial files left by an interrupted volantd", len(removed))

    def fetch(
        self,
        url: str,
        checksum: str | None,
        *,
        field: str,
        image_format: str | None = None,
        progress: MediaProgress | None = None,
    ) -> Path:
        """Fetch and verify an artifact: opened by the boot source registered for its URL scheme,
        verified and cached by :class:`ArtifactCache`; ``progress(field, url, done, total)`` is
        told how the download goes.

        A local path must lie in the artifact directories (the source reads it resolved); so must
        the path fetched, and an image declared qcow2 must keep its backing chain there.
        """
        scheme = urllib.parse.urlparse(url).scheme
        local = self._policy.resolve(url, field=field)
        source = next((s for s in self._sources if scheme in s.schemes), None)
        if source is None:
            raise ValidationError(
                f"{field}: no boot source handles {scheme or 'plain path'!r} URLs; installed sources: "
                + ", ".join(f"{s.name} ({'/'.join(x or 'path' for x in s.schemes)})" for s in self._sources),
                field=field,
            )
        deadline = time.monotonic() + self._settings.artifact_deadline
        report = None if progress is None else functools.partial(progress, field, url)
        try:
            fetched = self.cache.fetch(
                str(local or url), checksum, source.open, deadline=deadline, progress=report
            )
        except ValidationError as err:
            raise ValidationError(f"{field}: {err.message}", field=field) from None
        path = self._policy.confine(fetched, f"{url} (fetched to {fetched})", field=field)
        self._policy.check_image(path, image_format, field=field)
        return path

    def must_download(self, artifacts: Iterable[ArtifactRef]) -> bool:
        """Whether fetching ``artifacts`` reads one the cache does not hold from elsewhere than a
        host path (a download; a URL without a checksum whose copy is cached is only revalidated).
        """
        return any(
            urllib.parse.urlparse(a.location).scheme not in ("", "file")
            and self.cache.cached_path(a.location, a.checksum) is None
            for a in artifacts
        )

    def prepare(
        self,
        name: str,
        vm_dir: Path,
        manifest: Manifest,
        extra_args: str,
        *,
        progress: MediaProgress | None = None,
    ) -> BootPlan:
        """Fetch the manifest's boot media and disks, write ``vm_dir/initramfs.img`` (the base, the
        runtime's layer, the VM's private layer) and the VM's own images (a persistent root,
        writable disks), compose the command line. ``progress`` is told how each download goes.
        """
        layers: list[Path] = []
        if manifest.initramfs is not None:
            url, checksum = manifest.initramfs.url, manifest.initramfs.checksum
            layers.append(self.fetch(url, checksum, field="manifest.initramfs.url", progress=progress))
        disks = self._disks(vm_dir, manifest, progress)
        kernel, base = self.base_image()
        args = [*BASE_KERNEL_ARGS, f"{CMDLINE_NAME_KEY}={name}", f"{CMDLINE_RUNTIME_KEY}={manifest.runtime}"]
        if manifest.rootfs is not None:
            args.append(f"{CMDLINE_ROOTFS_KEY}={ROOTFS_DEVICE}")
            if manifest.rootfs.persistent:
                args.append(f"{CMDLINE_ROOTFS_PERSISTENT_KEY}=1")
        encoded = encode_for_guest(manifest)
        private = {AGENT_TOKEN_FILE: vm_token(self._settings.state_dir, name).encode()}
        if len(encoded) <= CMDLINE_MANIFEST_BUDGET:
            args.append(f"volant.manifest={encoded}")
        else:
            private[MANIFEST_LAYER_PATH] = manifest_json(manifest)
        args.extend(extra_args.split())
        check_length(args)
        vm_dir.mkdir(parents=True, exist_ok=True)
        composed = vm_dir / "initramfs.img"
        partial = vm_dir / f"initramfs.img{PARTIAL_SUFFIX}"
        partial.unlink(missing_ok=True)  # never write through a link a VMM left under this name
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)  # holds the token
        try:
            with os.fdopen(fd, "wb") as out:
                for part in (base, *layers):
                    with part.open("rb") as layer:
                        shutil.copyfileobj(layer, out)  # streamed: the base image is megabytes
                out.write(file_layer(private))
            partial.replace(composed)
        finally:
            partial.unlink(missing_ok=True)
        return BootPlan(kernel, composed, tuple(args), disks)

    def _disks(
        self, vm_dir: Path, manifest: Manifest, progress: MediaProgress | None
    ) -> tuple[DiskSpec, ...]:
        """The root filesystem (first: ``/dev/vda``), then the manifest's disks.

        A persistent root and the writable disks are images of the VM's own
        (:mod:`~volant_core.orchestrator.writable`), the others the fetched images, read-only. A
        root that is not persistent discards the VM's own root image an earlier boot left.
        """
        wanted: list[_Attached] = []  # all fetched before the first image is made: a failure leaves none
        if manifest.rootfs is not None:
            rootfs, field = manifest.rootfs, "manifest.rootfs.url"
            image = self.fetch(
                rootfs.url, rootfs.checksum, field=field, image_format=rootfs.format, progress=progress
            )
            own = WritableImage.of_root(vm_dir, rootfs.format) if rootfs.persistent else None
            wanted.append(_Attached(image, rootfs.format, rootfs.checksum, field, own, DiskRole.ROOTFS))
        for index, disk in enumerate(manifest.disks):
            field = f"manifest.disks[{index}].source"
            image = self.fetch(
                disk.source, disk.checksum, field=field, image_format=disk.format, progress=progress
            )
            own = None if disk.readonly else WritableImage.of_disk(vm_dir, disk.name, disk.format)
            wanted.append(_Attached(image, disk.format, disk.checksum, field, own, serial=disk.target))
        if manifest.rootfs is None or not manifest.rootfs.persistent:
            discard_root(vm_dir)
        return tuple(self._attach(item) for item in wanted)

    def _attach(self, item: _Attached) -> DiskSpec:
        """The disk of ``item``: its fetched image read-only, or the VM's own image of it."""
        if item.own is None:
            return DiskSpec(item.image, readonly=True, format=item.format, role=item.role, serial=item.serial)
        cached = item.checksum is not None  # the verified, content-addressed cache entry
        path, image_format, backing = item.own.prepare(
            item.image, item.format, cached=cached, field=item.field
        )
        self._policy.check_image(path, image_format, field=item.field)  # relative backing names start here
        return DiskSpec(path, format=image_format, role=item.role, serial=item.serial, backing=backing)


@dataclass(frozen=True)
class _Attached:
    """A fetched image to attach, and the VM's own writable image of it (None: attached read-only)."""

    image: Path
    format: str
    checksum: str | None
    field: str
    own: WritableImage | None
    role: DiskRole = DiskRole.DATA
    serial: str | None = None
