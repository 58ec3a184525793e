"""Fixtures of the vfio plugin's tests: the synthetic sysfs tree (:mod:`volant_vfio.testing`, the
TEST DOUBLE standing in for the kernel's PCI files, which no test machine can offer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from volant_vfio import driver
from volant_vfio.settings import VfioSettings
from volant_vfio.testing import EmulatedKernelSysfs, SysfsTree, standard_tree

from volant_core.sdk import PluginContext
from volant_core.settings import load_settings


@pytest.fixture
def sysfs_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SysfsTree]:
    """:func:`~volant_vfio.testing.standard_tree` under ``tmp_path``, the plugin's sysfs accessor
    made to emulate the kernel's effects on it (every driver built during the test, the daemon's too).
    """
    monkeypatch.setattr(driver, "Sysfs", EmulatedKernelSysfs)
    yield standard_tree(tmp_path / "sys")


@pytest.fixture
def vfio_context() -> Callable[[Path, SysfsTree, str], PluginContext]:
    """Builds the plugin's context as a daemon with state in ``state_dir`` would, on ``tree`` and
    with ``allowed`` as ``VOLANT_VFIO_ALLOWED_DEVICES``: ``vfio_context(state_dir, tree, allowed)``.
    """

    def build(state_dir: Path, tree: SysfsTree, allowed: str) -> PluginContext:
        settings = load_settings({}, state_dir=state_dir)
        return PluginContext("vfio", settings, VfioSettings(sysfs_root=tree.root, allowed_devices=allowed))

    return build
