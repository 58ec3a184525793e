"""volant_core.guest."""
