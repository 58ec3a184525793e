"""volant-vfio: passes allowlisted host PCI devices through to Volant VMs with vfio-pci."""
