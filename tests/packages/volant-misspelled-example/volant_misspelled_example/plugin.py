"""A plugin that imports fine but implements ``volant_hypervisor`` (the hook is ``volant_hypervisors``).

volantd must report the plugin as ``failed`` naming the unknown hook, and
never call it.
"""

from volant_core import hookimpl


@hookimpl
def volant_hypervisor() -> list[object]:
    """Misspelled on purpose: no Volant hook has this name."""
    return []
