"""volantd finds the installed plugin and registers its {{ cookiecutter.kind }} ``{{ cookiecutter.plugin_name }}``."""

from __future__ import annotations

from volant_core.testing.daemon import RunningDaemon
{% if cookiecutter.kind == "runtime" %}

def test_volantd_lists_the_runtime_with_this_package(volantd: RunningDaemon) -> None:
    """A volantd started with the installed packages lists the runtime, shipped by this package."""
    listed = {entry["name"]: entry for entry in volantd.request("GET", "/api/v1/plugins").json()["plugins"]}
    assert listed["{{ cookiecutter.plugin_name }}"]["source"] == "package:{{ cookiecutter.distribution }}"
{% else %}
#: Where ``GET /api/v1/system/info`` lists extensions of this kind.
EXTENSIONS = "{{ {'hypervisor': 'hypervisors', 'network-mode': 'network_modes', 'boot-source': 'boot_sources', 'device-driver': 'device_drivers', 'seed-builder': 'seed_builders'}[cookiecutter.kind] }}"


def test_volantd_lists_the_plugin(volantd: RunningDaemon) -> None:
    """A volantd started with the installed packages lists this one's {{ cookiecutter.kind }}."""
    info = volantd.request("GET", "/api/v1/system/info").json()
    assert "{{ cookiecutter.plugin_name }}" in [entry["name"] for entry in info["extensions"][EXTENSIONS]]
{% endif %}
