"""Which host files volantd reads when the API names one: only those under the artifact directories.

volantd runs as root; a manifest or VM configuration naming ``/etc/shadow``, a block
device or ``/proc/self/environ`` as an image would otherwise have it copy or attach
that file. :class:`ArtifactPolicy` holds the allowlist (``VOLANT_ARTIFACT_DIRS``,
plus the cache where the core stores verified downloads) and checks:

* a location (an absolute path or a ``file://`` URL; other schemes pass, their boot
  source fetches into the cache) resolves, symbolic links followed, to a path inside
  an allowed directory, and names a regular file when it exists;
* an image declared ``qcow2`` is one, and its backing chain and external data files
  stay inside the allowlist (:func:`volant_core.images.check_qcow2_chain`).

The catalog checks manifests before it stores them, the orchestrator checks VM
configurations before it stores them, and the boot media check every file again
right before it is read or attached (a file may have changed, a download may be a qcow2).
"""

from __future__ import annotations

import os
import stat
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from volant_core.errors import ValidationError
from volant_core.images import check_qcow2_chain
from volant_core.manifest import ArtifactRef
from volant_core.settings import Settings

#: The variable that lists the artifact directories.
ARTIFACT_DIRS_VARIABLE = "VOLANT_ARTIFACT_DIRS"


def local_path(location: str) -> Path | None:
    """The host path ``location`` names (a path, or a ``file://`` URL), or None for another scheme.

    Boot sources read local locations through this function too, so the path checked is the path read.
    """
    parts = urllib.parse.urlparse(location)
    if parts.scheme == "file":
        return Path(parts.path)
    return Path(location) if parts.scheme == "" else None


class ArtifactPolicy:
    """The directories host files named through the API must lie in, and the checks that keep
    volantd's reads inside them."""

    def __init__(self, directories: Iterable[Path]) -> None:
        self._directories = tuple(directories)
        self._roots = tuple(directory.resolve() for directory in self._directories)

    @classmethod
    def from_settings(cls, settings: Settings) -> ArtifactPolicy:
        """The policy of a daemon: its ``artifact_dirs`` and its download cache."""
        directories = settings.artifact_dirs
        if not any(settings.download_dir.is_relative_to(directory) for directory in directories):
            directories += (settings.download_dir,)
        return cls(directories)

    @property
    def directories(self) -> tuple[Path, ...]:
        """The allowed directories, as configured."""
        return self._directories

    def resolve(self, location: str, *, field: str, strict: bool = True) -> Path | None:
        """The resolved host path of a local ``location`` after :meth:`confine`; None for other schemes."""
        path = local_path(location)
        return None if path is None else self.confine(path, location, field=field, strict=strict)

    def confine(self, path: Path, what: str, *, field: str, strict: bool = True) -> Path:
        """``path`` resolved (symbolic links followed), when it lies inside an allowed directory and,
        if it exists, is a regular file; it must exist when ``strict``. ValidationError naming
        ``field`` (``what`` describes the file) otherwise.
        """
        if not path.is_absolute():
            raise ValidationError(
                f"{field}: {what} is not an absolute path; give an absolute path or a file:// URL",
                field=field,
            )
        try:
            resolved = path.resolve(strict=strict)
        except FileNotFoundError:
            raise ValidationError(f"{field}: {what}: no such file on the host", field=field) from None
        except (OSError, RuntimeError) as err:
            raise ValidationError(f"{field}: {what} cannot be resolved ({err})", field=field) from None
        if not any(resolved.is_relative_to(root) for root in self._roots):
            shown = what if resolved == path else f"{what} (resolved: {resolved})"
            dirs = ", ".join(str(directory) for directory in self._directories)
            raise ValidationError(
                f"{field}: {shown} is outside the directories Volant reads images from ({dirs}); "
                f"move it under one of them or add its directory to {ARTIFACT_DIRS_VARIABLE}",
                field=field,
            )
        try:
            mode = resolved.stat().st_mode
        except FileNotFoundError:
            return resolved
        if not stat.S_ISREG(mode):
            raise ValidationError(f"{field}: {what} is not a regular file; name an image file", field=field)
        return resolved

    def check_image(self, image: Path, image_format: str | None, *, field: str) -> None:
        """Refuse ``image`` when it is declared qcow2 and is not one, or when its backing chain or
        data file leaves the allowed directories (the image itself is not checked here).
        """
        if image_format == "qcow2":
            check_qcow2_chain(
                image, field=field, confine=lambda path, what: self.confine(path, what, field=field)
            )

    def check_all(self, artifacts: Iterable[ArtifactRef]) -> None:
        """Check every artifact a manifest or configuration names (existing local images fully;
        a missing file only for where it would be, it is checked again when a VM boots).
        """
        for artifact in artifacts:
            path = self.resolve(artifact.location, field=artifact.field, strict=False)
            if path is not None and os.path.lexists(path):
                self.check_image(path, artifact.format, field=artifact.field)
