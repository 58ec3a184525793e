"""Volant network mode ``vsock``: no NIC, no address; the agent only over the hypervisor's own channel."""
