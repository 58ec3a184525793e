"""volant-cloudinit: cloud-init NoCloud seed disks (vfat and iso9660) for Volant VMs."""
