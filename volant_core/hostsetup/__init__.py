"""Host setup for bridged networking: what ``volar setup`` plans, applies, records and undoes.

``volar setup`` prepares a host for the network modes that put VMs on a bridge: the bridge and the
host's address on it, ``net.ipv4.ip_forward``, a NAT and forward ruleset of Volant's own, the files
that make all of it survive a reboot, and the systemd units of volantd. Each change is recorded with
what was there before, so a second run changes nothing and ``--uninstall`` puts back exactly what the
host had. :mod:`.run` is the entry point; each other module has one part of the job.
"""
