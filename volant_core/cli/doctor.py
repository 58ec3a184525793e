"""``volar doctor``: run every host check the installed plugins register, locally."""

from __future__ import annotations

import click

from volant_core.cli.output import emit, output_option
from volant_core.descriptors import HostCheckResult
from volant_core.plugins import load_plugins
from volant_core.registry import build_registries

CHECK_COLUMNS = [("CHECK", "check"), ("STATUS", "status"), ("DETAIL", "detail"), ("FIX", "fix")]


@click.command("doctor")
@output_option
def doctor(output: str) -> None:
    """Check this host: accelerator, hypervisor binaries, state directory, plugins.

    Runs here, not through the API. Exits 1 when a check fails.

    Example: volar doctor
    """
    host = load_plugins()
    registries = build_registries(host)
    rows = []
    for check in registries.host_checks:
        try:
            result = check.run()
        except Exception as err:  # a broken check is itself a finding
            result = HostCheckResult("fail", f"the check raised {type(err).__name__}: {err}")
        rows.append(
            {"check": check.name, "status": result.status, "detail": result.detail, "fix": result.fix}
        )
    for info in host.plugins.values():
        if info.status == "failed":
            rows.append(
                {
                    "check": f"plugin {info.name}",
                    "status": "fail",
                    "detail": info.error or "",
                    "fix": f"reinstall or remove {info.distribution}, or list it in VOLANT_DISABLE_PLUGINS",
                }
            )
    emit(rows, output, CHECK_COLUMNS)
    if any(row["status"] == "fail" for row in rows):
        raise SystemExit(1)
