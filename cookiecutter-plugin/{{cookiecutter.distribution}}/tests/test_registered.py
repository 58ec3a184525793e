"""volantd finds the installed plugin and registers its {{ cookiecutter.kind }} ``{{ cookiecutter.plugin_name }}``."""

from __future__ import annotations

from volant_core.testing.daemon import RunningDaemon

#: Where ``GET /api/v1/system/info`` lists extensions of this kind.
EXTENSIONS = "{{ {'hypervisor': 'hypervisors', 'network-mode': 'network_modes', 'device-driver': 'device_drivers', 'seed-builder': 'seed_builders'}[cookiecutter.kind] }}"


def test_volantd_lists_the_plugin(volantd: RunningDaemon) -> None:
    """A volantd started with the installed packages lists this one's {{ cookiecutter.kind }}."""
    info = volantd.request("GET", "/api/v1/system/info").json()
    assert "{{ cookiecutter.plugin_name }}" in [entry["name"] for entry in info["extensions"][EXTENSIONS]]
