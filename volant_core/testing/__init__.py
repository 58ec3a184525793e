"""volant_core.testing."""
