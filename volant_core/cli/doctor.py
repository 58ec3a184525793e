"""``volar doctor``: run every host check the installed plugins register, locally, and show the
plugins' settings as the daemon would read them from this environment.
"""

from __future__ import annotations

from typing import Any

import click

from volant_core.cli.output import emit, output_option
from volant_core.context import call_with_context
from volant_core.descriptors import HostCheckResult
from volant_core.errors import VolantError, describe_exception
from volant_core.plugin_settings import settings_of
from volant_core.plugins import Plugins, load_plugins
from volant_core.settings import load_settings

CHECK_COLUMNS = [("CHECK", "check"), ("STATUS", "status"), ("DETAIL", "detail"), ("FIX", "fix")]


@click.command("doctor")
@output_option
def doctor(output: str) -> None:
    """Check this host: accelerator, hypervisor binaries, state directory, plugins and their settings.

    Runs here, not through the API, with this shell's VOLANT_* variables. Exits 1 when a check fails.

    Example: volar doctor
    """
    plugins = load_plugins()
    try:
        settings = load_settings()
    except VolantError as err:
        emit([_row("settings", "fail", err.message, "fix the variable it names")], output, CHECK_COLUMNS)
        raise SystemExit(1) from None
    problems = plugins.configure(settings, strict=False)
    rows = _setting_rows(plugins, settings.plugin_env, problems)
    for owner, check in plugins.registries.host_checks.items():
        try:
            result = call_with_context(check.run, plugins.context(owner))
        except Exception as err:  # a broken check is itself a finding
            result = HostCheckResult("fail", f"the check raised {describe_exception(err)}")
        rows.append(_row(check.name, result.status, result.detail, result.fix))
    for info in plugins.info.values():
        if info.status == "failed":
            fix = f"reinstall or remove {info.distribution}, or list it in VOLANT_DISABLE_PLUGINS"
            rows.append(_row(f"plugin {info.name}", "fail", info.error or "", fix))
    emit(rows, output, CHECK_COLUMNS)
    if any(row["status"] == "fail" for row in rows):
        raise SystemExit(1)


def _row(check: str, status: str, detail: str, fix: str = "") -> dict[str, Any]:
    return {"check": check, "status": status, "detail": detail, "fix": fix}


def _setting_rows(plugins: Plugins, values: dict[str, str], problems: dict[str, str]) -> list[dict[str, Any]]:
    """One row per plugin setting: its value and where it comes from, or the plugin's problem (a
    plugin that declares no settings has one too: a variable under its prefix).
    """
    rows = []
    models = plugins.registries.settings
    for name in sorted(models.keys() | problems.keys()):
        if name in problems:
            rows.append(_row(f"settings of {name}", "fail", problems[name], "fix the variable it names"))
            continue
        model = models[name]
        options = plugins.context(name).options
        for setting in settings_of(name, model):
            source = "set" if setting.variable in values else "default"
            shown = f"{setting.variable}={getattr(options, setting.name)} ({source})"
            rows.append(_row(f"setting {setting.variable}", "pass", shown))
    return rows
