"""How an invalid value of a plugin's own settings is refused: the whole message and the field, as
volantd (``running_daemon``) raises it when it refuses to start and as ``volar doctor`` shows it,
for a value one field refuses and for a settings model whose own validator refuses the combination.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, model_validator

from volant_core import hookimpl
from volant_core.errors import ValidationError
from volant_core.plugins import load_plugins
from volant_core.settings import load_settings
from volant_core.testing.daemon import running_daemon

#: The plugin declaring :class:`Window`.
PLUGIN = "test-window"


class Window(BaseModel):
    """TEST settings: a range of hours, whose start must come before its end (a rule on two fields,
    checked by the model's own validator).
    """

    start: int = 0
    end: int = 24

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        """Refuse a start that is not before the end."""
        if self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class DeclaresWindow:
    """TEST plugin: declares :class:`Window` as its settings, and nothing else."""

    @hookimpl
    def volant_settings(self) -> list[type[BaseModel]]:
        """:class:`Window`."""
        return [Window]


#: The given variables, the variable the refusal names (its field too) and the whole message.
REFUSALS = [
    pytest.param(
        {"VOLANT_TEST_WINDOW_END": "late"},
        "VOLANT_TEST_WINDOW_END",
        "VOLANT_TEST_WINDOW_END: Input should be a valid integer, unable to parse string as an integer",
        id="a-field",
    ),
    pytest.param(  # no one variable is wrong: the refusal names the plugin's prefix, all of them
        {"VOLANT_TEST_WINDOW_START": "30"},
        "VOLANT_TEST_WINDOW_*",
        "VOLANT_TEST_WINDOW_*: Value error, start must be before end",
        id="the-model",
    ),
]


@pytest.mark.parametrize(("given", "variable", "message"), REFUSALS)
def test_an_invalid_plugin_setting_stops_volantd_naming_the_variable_as_the_field(
    given: dict[str, str], variable: str, message: str
) -> None:
    """What volantd prints when it refuses to start (the message), and the field an embedder of the
    daemon reads from the :class:`ValidationError`.
    """
    with pytest.raises(ValidationError) as refused:
        with running_daemon(plugins=[(PLUGIN, DeclaresWindow())], plugin_settings=given):
            pass
    assert refused.value.message == message
    assert refused.value.field == variable


@pytest.mark.parametrize(("given", "variable", "message"), REFUSALS)
def test_volar_doctor_reports_an_invalid_plugin_setting_with_the_same_message(
    tmp_path: Path, given: dict[str, str], variable: str, message: str
) -> None:
    """``volar doctor`` configures the plugins without stopping at the first problem: the plugin's
    problem (its ``settings of test-window`` row) is the message volantd would stop with, and the
    plugin gets no options; the other plugins are configured.
    """
    plugins = load_plugins(extra=[(PLUGIN, DeclaresWindow())])
    problems = plugins.configure(load_settings({}, given, state_dir=tmp_path), strict=False)
    assert problems == {PLUGIN: message}
    assert plugins.context(PLUGIN).options is None
    assert plugins.context("core").plugin == "core"
