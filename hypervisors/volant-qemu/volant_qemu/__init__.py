"""QEMU hypervisor backend for Volant."""
