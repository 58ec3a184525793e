"""Volant network mode ``bridged``: a tap per VM on a host bridge, addressed from volantd's pool."""
