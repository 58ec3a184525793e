"""Keep the modules and tests of the chosen kind only."""

from pathlib import Path

KIND = "{{ cookiecutter.kind }}"
MODULE = Path("{{ cookiecutter.module }}")
# Each kind's implementation module and contract test, by kind.
FILES = {
    "hypervisor": ("vmm.py", "tests/test_hypervisor.py"),
    "network-mode": ("network.py", "tests/test_network_mode.py"),
    "boot-source": ("source.py", "tests/test_boot_source.py"),
    "device-driver": ("devices.py", "tests/test_device_driver.py"),
    "seed-builder": ("seed.py", "tests/test_seed_builder.py"),
    "runtime": ("manifest.json", "payload.cpio.gz", "tests/test_runtime.py"),
}
for kind, files in FILES.items():
    if kind != KIND:
        for name in files:
            (Path(name) if "/" in name else MODULE / name).unlink()
