"""The orchestrator: VM lifecycle across the store, the plugins and the hypervisor."""

from volant_core.orchestrator.service import Orchestrator

__all__ = ["Orchestrator"]
