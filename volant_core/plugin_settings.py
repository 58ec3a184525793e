"""Plugin settings: the models plugins declare through ``volant_settings``, read from ``VOLANT_<PLUGIN>_*``.

Each field ``f`` of plugin ``p``'s model is the variable ``VOLANT_<P>_<F>`` (upper case, ``-`` and
``.`` as ``_``) and the ``volantd`` option ``--<p>-<f>``. Values come from the environment, then from
the command line; they are validated when the daemon starts, and a variable under a plugin's prefix
that names none of its settings is refused (a typo is never silently ignored), unless it is under
the longer prefix of another plugin (``VOLANT_CLOUD_HYPERVISOR_*`` beside a plugin ``cloud``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from volant_core.errors import ValidationError
from volant_core.settings import ENVIRONMENT

_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*")

#: ``VOLANT_*`` variables that Volant's other programs read and volantd leaves alone: ``volar``'s
#: address of the API, the switch every program reads to leave plugins out, the guest image
#: builder's cache, and the test suite's own.
OTHER_PROGRAMS_VARIABLES = frozenset(
    {
        "VOLANT_API",
        "VOLANT_API_BASE",
        "VOLANT_DISABLE_PLUGINS",
        "VOLANT_GUEST_CACHE",
        "VOLANT_TEST_CACHE",
        "VOLANT_TEST_PACKAGES",
    }
)
#: How alike (``difflib``'s ratio) a variable nothing reads must be to a setting's to be refused
#: as a misspelling of it (``VOLANT_API_LISTN`` and ``VOLANT_API_LISTEN``: 0.97).
MISSPELLING_CUTOFF = 0.8


def variable_prefix(plugin: str) -> str:
    """``VOLANT_<PLUGIN>_``: the prefix of every setting of ``plugin``."""
    return "VOLANT_" + re.sub(r"[-.]", "_", plugin.upper()) + "_"


@dataclass(frozen=True)
class PluginSetting:
    """One setting a plugin declared: its variable, its ``volantd`` option and its field."""

    plugin: str
    name: str
    info: FieldInfo

    @property
    def variable(self) -> str:
        """The environment variable, e.g. ``VOLANT_QEMU_ACCEL``."""
        return variable_prefix(self.plugin) + self.name.upper()

    @property
    def option(self) -> str:
        """The ``volantd`` option, e.g. ``--qemu-accel``."""
        return "--" + self.variable.removeprefix("VOLANT_").lower().replace("_", "-")

    @property
    def default(self) -> Any:
        """The default value (None when the setting is required)."""
        return None if self.info.is_required() else self.info.get_default(call_default_factory=True)

    @property
    def help(self) -> str:
        """The field's description, its variable and its default, for ``volantd --help``."""
        shown = "required" if self.info.is_required() else f"default {self.default}"
        description = f"{self.info.description} " if self.info.description else ""
        return f"{description}(plugin {self.plugin}; env {self.variable}; {shown})"


def model_problem(plugin: str, model: object) -> str | None:
    """Why ``model`` cannot be the settings of ``plugin``, or None."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return f"volant_settings must return pydantic model classes, got {model!r}"
    for name in model.model_fields:
        if not _FIELD_NAME.fullmatch(name):
            return f"volant_settings: field {name!r} must be lower-case letters, digits and '_'"
        variable = variable_prefix(plugin) + name.upper()
        if variable in ENVIRONMENT:
            return f"volant_settings: {variable} is a setting of volantd itself; rename the field"
    return None


def settings_of(plugin: str, model: type[BaseModel]) -> list[PluginSetting]:
    """The settings ``model`` declares for ``plugin``, in field order."""
    return [PluginSetting(plugin, name, info) for name, info in model.model_fields.items()]


def resolve_options(
    plugin: str, model: type[BaseModel] | None, values: Mapping[str, str], others: Iterable[str] = ()
) -> BaseModel | None:
    """The plugin's settings from ``values`` (variables: the environment with volantd's options over
    it); None for a plugin that declares none (``model`` None).

    Raises :class:`ValidationError` naming the variable of the first bad value, or a variable under
    the plugin's prefix that names no setting (any variable there, when it declares none). A
    variable under the longer prefix of one of the ``others`` (the other loaded plugins:
    ``VOLANT_CLOUD_HYPERVISOR_BINARY`` beside a plugin ``cloud``) is that plugin's, not a stray of
    this one.
    """
    prefix = variable_prefix(plugin)
    longer = tuple(p for p in map(variable_prefix, others) if p != prefix and p.startswith(prefix))
    declared = {s.variable: s for s in settings_of(plugin, model)} if model is not None else {}
    stray = sorted(
        v for v in values if v.startswith(prefix) and v not in declared and not v.startswith(longer)
    )
    if stray:
        raise ValidationError(
            f"{stray[0]}: plugin {plugin} has no such setting; its settings: {', '.join(declared) or 'none'}",
            field=stray[0],
        )
    if model is None:
        return None
    given = {s.name: values[v] for v, s in declared.items() if v in values}
    try:
        return model.model_validate(given)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        # A refusal of the model's own validator (a combination of values) names no one setting.
        variable = prefix + (str(first["loc"][0]).upper() if first["loc"] else "*")
        raise ValidationError(f"{variable}: {first['msg']}", field=variable) from None


def refuse_misspellings(values: Iterable[str], settings: Iterable[str], plugins: Iterable[str]) -> None:
    """Refuse a variable of ``values`` that nothing reads and that is spelled like one of
    ``settings`` (every variable volantd and its loaded plugins read): a typo would otherwise leave
    that setting at its default without a word.

    A variable under the prefix of one of ``plugins`` (every plugin found, loaded or not: a disabled
    plugin's settings may stay set) is that plugin's; one of :data:`OTHER_PROGRAMS_VARIABLES` is
    another program's; one like no setting may be any other program's, and is left alone.
    Raises :class:`ValidationError` naming the variable and the setting it resembles.
    """
    known = list(settings)
    prefixes = tuple(map(variable_prefix, plugins))
    for variable in sorted(values):
        if variable in known or variable in OTHER_PROGRAMS_VARIABLES or variable.startswith(prefixes):
            continue
        alike = difflib.get_close_matches(variable, known, n=1, cutoff=MISSPELLING_CUTOFF)
        if alike:
            raise ValidationError(
                f"{variable}: neither volantd nor a plugin has this setting; did you mean {alike[0]}?",
                field=variable,
            )
