"""kestrel's workload and a shutdown that comes first: no workload may outlive the agent."""

from __future__ import annotations

import threading
import uuid

from volant_core.agent.reaper import Reaper
from volant_core.agent.workload import Workload
from volant_core.testing.processes import kill_mentioning, processes_mentioning


def test_a_stop_before_the_workload_started_means_no_workload() -> None:
    marker = f"volant-test-never-{uuid.uuid4().hex}"
    manifest = {"workload": {"entrypoint": ["/bin/sleep", "60", marker]}}
    workload = Workload(manifest, Reaper(), None)
    workload.stop(grace_s=1)
    runner = threading.Thread(target=workload.run, daemon=True)
    try:
        runner.start()
        runner.join(10)
        assert not runner.is_alive(), "run() started the workload after stop() and now waits for it"
        assert workload.pid is None
        assert processes_mentioning(marker) == []
    finally:
        kill_mentioning(marker)
