"""A plugin module that fails at import, as one with a missing dependency would.

volantd must report the plugin as ``failed`` with this message and keep working.
"""

raise ImportError("volant-broken-example fails to import on purpose (test fixture)")
