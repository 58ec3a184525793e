"""volant_core.api."""
