"""Keep the modules and tests of the chosen kind only."""

from pathlib import Path

KIND = "{{ cookiecutter.kind }}"
MODULE = Path("{{ cookiecutter.module }}")
# Each kind's implementation module and contract test, by kind.
FILES = {
    "hypervisor": ("vmm.py", "test_hypervisor.py"),
    "network-mode": ("network.py", "test_network_mode.py"),
    "device-driver": ("devices.py", "test_device_driver.py"),
    "seed-builder": ("seed.py", "test_seed_builder.py"),
}
for kind, (module_file, test_file) in FILES.items():
    if kind != KIND:
        (MODULE / module_file).unlink()
        (Path("tests") / test_file).unlink()
