"""Volant network mode ``dhcp``: a tap per VM on a host bridge, addressed by dnsmasq (static leases)."""
