"""volant_core.agent."""
