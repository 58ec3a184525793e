"""The network mode honours volant-core's network-mode contract (``volant_core.testing.contracts``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from volant_core.sdk import PluginContext, VMView
from volant_core.testing.contracts import NetworkModeContract, make_vm_view
from volant_core.testing.plugins import plugin_context

from {{ cookiecutter.module }}.network import Network


class TestNetworkMode(NetworkModeContract):
    """Attach and detach, detach twice, detach of a VM never attached."""

    @pytest.fixture
    def context(self, tmp_path: Path) -> PluginContext:
        return plugin_context("{{ cookiecutter.plugin_name }}", tmp_path / "state")

    @pytest.fixture
    def network_mode(self, context: PluginContext) -> Network:
        return Network(context)

    @pytest.fixture
    def vm(self, tmp_path: Path) -> VMView:
        return make_vm_view("web", tmp_path / "vm")

    def test_detach_removes_what_attach_made(self, network_mode: Network, vm: VMView) -> None:
        network_mode.attach(vm)
        assert network_mode.attached() == ["web"]
        network_mode.detach(vm)
        assert network_mode.attached() == []
