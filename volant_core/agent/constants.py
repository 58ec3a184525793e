"""Names shared by kestrel and the host: ports, guest paths, console lines."""

#: TCP port kestrel listens on inside the guest.
AGENT_PORT = 8080
#: Name of the virtio-serial port that carries the agent channel.
SERIAL_PORT_NAME = "volant.agent"
#: Kernel command line key holding the encoded manifest.
CMDLINE_MANIFEST_KEY = "volant.manifest"
#: Guest path of the manifest the host delivers in an extra initramfs layer.
MANIFEST_FILE = "/volant/manifest.json"
#: Guest directory holding kestrel's package.
KESTREL_LIBDIR = "/usr/lib/kestrel"
#: Guest file listing the kernel modules to load at boot, one path a line, dependencies first.
MODULES_LIST = "/usr/lib/kestrel/modules.load"
#: Console line printed once the agent serves requests.
READY_LINE = "kestrel: ready"
#: Console line printed once the workload passed its health check.
WORKLOAD_READY_LINE = "kestrel: workload healthy"
#: Kernel command line key: the guest NIC's address as ``<ip>/<prefix>`` (network modes set it).
CMDLINE_IP_KEY = "volant.ip"
#: Kernel command line key: the default gateway of the guest NIC.
CMDLINE_GATEWAY_KEY = "volant.gw"
#: The guest NIC kestrel configures from ``volant.ip``.
GUEST_NIC = "eth0"
#: The busybox binary in the guest image.
BUSYBOX = "/usr/bin/busybox"
#: The guest's serial console, where kestrel keeps a shell for ``volar vms console``.
CONSOLE_TTY = "/dev/ttyS0"
#: Kernel command line key: ``volant.console=off`` keeps the console free of a shell.
CMDLINE_CONSOLE_KEY = "volant.console"
#: Kernel command line key: the block device holding the runtime's root filesystem.
CMDLINE_ROOTFS_KEY = "volant.rootfs"
#: Kernel command line key: ``volant.rootfs.persistent=1`` says the root filesystem is the VM's own,
#: attached read-write: kestrel mounts it read-write, with no RAM overlay (its writes persist).
CMDLINE_ROOTFS_PERSISTENT_KEY = "volant.rootfs.persistent"
#: Where the host attaches a runtime's root filesystem: the first virtio disk.
ROOTFS_DEVICE = "/dev/vda"
#: Guest directory where kestrel assembles the workload's root (the root filesystem under a RAM overlay).
WORKLOAD_ROOT = "/run/volant/root"
#: Kernel command line key: the VM's name.
CMDLINE_NAME_KEY = "volant.name"
#: Kernel command line key: the runtime the VM boots.
CMDLINE_RUNTIME_KEY = "volant.runtime"
#: Guest file (in an initramfs layer the host adds) holding the VM's agent token; kestrel reads it
#: at boot, removes it, and then asks every request on its TCP listener for the token.
AGENT_TOKEN_FILE = "/volant/agent-token"
#: Request header carrying the agent token (kestrel never passes it on to the workload).
AGENT_TOKEN_HEADER = "X-Volant-Agent-Token"
#: Kernel command line key: the guest's DNS servers, comma-separated IPv4 addresses (network modes set it).
CMDLINE_DNS_KEY = "volant.dns"
#: Kernel command line key: the guest's host name (network modes set it).
CMDLINE_HOSTNAME_KEY = "volant.hostname"
#: Kernel command line key naming how the guest NIC gets its address: ``volant.net=dhcp`` asks over DHCP.
CMDLINE_NET_KEY = "volant.net"
#: The ``volant.net`` value for DHCP (busybox ``udhcpc`` on the guest NIC).
NET_DHCP = "dhcp"
#: udhcpc's event script in the guest image (busybox's default path; busybox ships no script).
UDHCPC_SCRIPT = "/usr/share/udhcpc/default.script"
#: Where the udhcpc script records the lease it applied: ``<ip>/<prefix> <router>``.
DHCP_LEASE_FILE = "/run/volant/dhcp.lease"
#: Request header the host numbers every request with; kestrel echoes it in the answer, so that the
#: host recognises the late answer to a request it gave up on (a serial lane delivers it to whoever
#: connects next) and skips it.
REQUEST_ID_HEADER = "X-Volant-Request-Id"
#: File system labels of a cloud-init NoCloud seed (vfat ``CIDATA``, iso9660 ``cidata``), compared
#: without regard to case.
SEED_LABEL = "cidata"
#: Guest directory where kestrel mounts the seed read-only (it stays mounted for the workload).
SEED_MOUNT = "/run/volant/seed"
#: File on the seed holding what kestrel applies (the host's reading of the YAML documents,
#: :mod:`volant_core.seedplan`).
SEED_PLAN_FILE = "volant-kestrel.json"
#: Version of that file's format (kestrel applies no other).
SEED_PLAN_VERSION = 1
#: Longest a ``bootcmd``/``runcmd`` command or the user-data script may run before kestrel kills it.
SEED_COMMAND_TIMEOUT_S = 300
