"""A plugin whose ``volant_register_commands`` raises.

volar must report it on stderr, skip it and run every other command as usual.
"""

from volant_core import hookimpl


@hookimpl
def volant_register_commands() -> None:
    """Fail on purpose, before adding anything."""
    raise RuntimeError("volant-failing-command-example cannot add its command (test fixture)")
