"""What to tell a user whose request a VM's state refuses: the next step that fits that state."""

from __future__ import annotations

from volant_core.vm import VMStatus


def until_running(name: str, status: str) -> str:
    """How VM ``name``, now in ``status``, gets to ``running``."""
    if status == VMStatus.STARTING:
        return (
            f"wait for it to finish starting (`volar vms get {name}`), "
            f"or stop it at once with `volar vms stop --force {name}`"
        )
    if status == VMStatus.STOPPING:
        return f"wait for it to stop, then start it with `volar vms start {name}`"
    if status == VMStatus.RUNNING:
        return "try again: it is running now"
    return f"start it with `volar vms start {name}`"


def until_stopped(name: str, status: str) -> str:
    """How VM ``name``, now in the active ``status``, gets to ``stopped`` (to be started again)."""
    if status == VMStatus.STARTING:
        return f"wait for it to finish starting, or stop it at once with `volar vms stop --force {name}`"
    if status == VMStatus.STOPPING:
        return f"wait for it to stop (`volar vms get {name}`)"
    return f"stop it first with `volar vms stop {name}`, or restart it with `volar vms restart {name}`"
