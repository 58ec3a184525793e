"""The runtime catalog: manifests installed through the API and manifests shipped in pip packages.

Both kinds appear in one list, each with its source. Installed manifests live
in the ``plugins`` table (the Go original's name) and can be enabled, disabled
and removed; packaged ones come from the ``volant_runtime_manifests`` hook and
follow their package (uninstall or ``VOLANT_DISABLE_PLUGINS`` removes them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from volant_core.errors import ConflictError, NotFoundError, ValidationError
from volant_core.manifest import Manifest, manifest_json, parse_manifest
from volant_core.plugins import Plugins
from volant_core.store import RuntimeRecord, Store

log = logging.getLogger(__name__)

#: ``source`` of a manifest installed through the API.
SOURCE_INSTALLED = "installed"


@dataclass(frozen=True)
class RuntimeEntry:
    """One runtime manifest and where it comes from."""

    manifest: Manifest
    enabled: bool
    source: str

    @property
    def name(self) -> str:
        """The runtime's name (its key in the catalog)."""
        return self.manifest.name

    def manifest_dict(self) -> dict[str, Any]:
        """The normalized manifest as a JSON object."""
        return json.loads(manifest_json(self.manifest))

    def summary(self) -> dict[str, Any]:
        """Name, version, runtime, enabled flag and source."""
        return {
            "name": self.name,
            "version": self.manifest.version,
            "runtime": self.manifest.runtime,
            "enabled": self.enabled,
            "source": self.source,
        }


class RuntimeCatalog:
    """Looks up, installs and removes runtime manifests.

    ``check_artifacts`` refuses (ValidationError) the files a manifest to install names when
    volantd may not read them (see :class:`volant_core.confinement.ArtifactPolicy`).
    """

    def __init__(
        self,
        store: Store,
        plugins: Plugins,
        in_use: Callable[[str], list[str]],
        check: Callable[[Manifest], None] = lambda manifest: None,
    ) -> None:
        self._store = store
        self._plugins = plugins
        self._in_use = in_use
        self._check = check
        self._parsed: dict[str, tuple[tuple[int, datetime], Manifest]] = {}

    @property
    def _shipped(self) -> dict[str, RuntimeEntry]:
        """The manifests plugins ship, by name (read live: a plugin failing later takes its own away)."""
        return {
            manifest.name: RuntimeEntry(manifest, True, f"package:{self._plugins.info[owner].distribution}")
            for owner, manifest in self._plugins.registries.runtime_manifests
        }

    def list(self) -> list[RuntimeEntry]:
        """Every runtime, sorted by name; a stored manifest that no longer validates (stored before
        a rule it breaks) is left out with a warning, and can still be removed.
        """
        entries = dict(self._shipped)
        for record in self._store.runtimes.list():
            try:
                entries[record.name] = self._installed(record)
            except ValidationError as err:
                log.warning(
                    "installed runtime %r is not listed, its stored manifest is invalid (%s); "
                    "remove it with `volar plugins remove` and install a valid one",
                    record.name,
                    err.message,
                )
        return [entries[name] for name in sorted(entries)]

    def get(self, name: str) -> RuntimeEntry:
        """The runtime called ``name`` (enabled or not)."""
        if name in self._shipped:
            return self._shipped[name]
        try:
            record = self._store.runtimes.get(name)
        except NotFoundError:
            known = ", ".join(e.name for e in self.list()) or "none installed"
            raise NotFoundError(
                f"unknown runtime plugin {name!r}; installed: {known} "
                "(install one with `volar plugins install FILE`)",
                field="plugin",
            ) from None
        return self._installed(record)

    def get_enabled(self, name: str) -> RuntimeEntry:
        """The runtime called ``name``; ConflictError when it is disabled."""
        entry = self.get(name)
        if not entry.enabled:
            raise ConflictError(
                f"runtime plugin {name!r} is disabled; enable it with `volar plugins enable {name}`",
                field="plugin",
            )
        return entry

    def install(self, document: Any) -> RuntimeEntry:
        """Validate and store a manifest (replacing an installed one of the same name), enabled unless
        it says ``"enabled": false``.

        ``check`` (given at construction) refuses a manifest that VMs of this daemon could not boot
        as written: a field nothing installed honours, a host file volantd may not read (see
        :class:`volant_core.confinement.ArtifactPolicy`).
        """
        manifest = parse_manifest(document)
        if manifest.name in self._shipped:
            raise ConflictError(
                f"runtime {manifest.name!r} ships in {self._shipped[manifest.name].source}; "
                "pick another name",
                field="name",
            )
        self._check(manifest)
        record = self._store.runtimes.upsert(
            manifest.name, manifest.version, json.loads(manifest_json(manifest)), enabled=manifest.enabled
        )
        return self._installed(record)

    def set_enabled(self, name: str, enabled: bool) -> RuntimeEntry:
        """Enable or disable an installed runtime."""
        self._refuse_shipped(name, "enabled or disabled")
        record = self._store.runtimes.set_enabled(name, enabled)
        return self._installed(record)

    def remove(self, name: str) -> None:
        """Remove an installed runtime; ConflictError while VMs use it."""
        self._refuse_shipped(name, "removed")
        users = self._in_use(name)
        if users:
            raise ConflictError(
                f"runtime plugin {name!r} is used by VMs {', '.join(users)}; delete them first",
                field="plugin",
            )
        self._store.runtimes.delete(name)

    def _refuse_shipped(self, name: str, what: str) -> None:
        if name in self._shipped:
            raise ConflictError(
                f"runtime {name!r} ships in {self._shipped[name].source} and cannot be {what} here; "
                "uninstall the package or list it in VOLANT_DISABLE_PLUGINS",
                field="plugin",
            )

    def _installed(self, record: RuntimeRecord) -> RuntimeEntry:
        """The entry of a stored manifest, validated once per stored version of its row (every VM
        create looks its runtime up; validating the manifest each time cost more than the rest).
        """
        version = (record.id, record.updated_at)
        parsed = self._parsed.get(record.name)
        if parsed is None or parsed[0] != version:
            parsed = (version, parse_manifest(record.manifest))
            self._parsed[record.name] = parsed
        return RuntimeEntry(parsed[1], record.enabled, SOURCE_INSTALLED)
