"""Cloud Hypervisor backend for Volant."""
