"""volant_core.store."""
