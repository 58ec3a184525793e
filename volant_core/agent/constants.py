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
