"""volant_core.orchestrator."""
