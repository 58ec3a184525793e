"""volant_core.cli."""
