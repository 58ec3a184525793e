"""``GET /api/v1/vms/{name}/logs`` on a huge console log without newlines: one bounded read from the end."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from volant_core.orchestrator import workload
from volant_core.orchestrator.workload import MAX_TAIL_BYTES, tail
from volant_core.testing.daemon import RunningDaemon

#: A console log a guest printing without newlines makes in no time.
HUGE = 16 * 1024 * 1024


class CountingReader(io.BufferedReader):
    """A binary file that counts the bytes read through it."""

    total = 0

    def read(self, size: int | None = -1) -> bytes:
        """Read as usual, counting."""
        data = super().read(size)
        CountingReader.total += len(data)
        return data


def test_tail_reads_at_most_the_cap_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "console.log"
    log.write_bytes(b"a" * (HUGE - 1) + b"z")

    def counting_open(self: Path, mode: str = "r") -> CountingReader:
        assert mode == "rb"
        return CountingReader(io.FileIO(self, "r"))

    monkeypatch.setattr(workload.Path, "open", counting_open)
    CountingReader.total = 0
    answer = tail(log, 200, HUGE)
    assert answer.endswith(b"az") and len(answer) <= MAX_TAIL_BYTES
    assert CountingReader.total <= MAX_TAIL_BYTES + 64 * 1024, "the tail reads the log once, from the end"


def test_logs_of_a_huge_line_answer_its_end_only(host_api: RunningDaemon) -> None:
    assert host_api.request("POST", "/api/v1/vms", {"name": "big", "plugin": "hello-host"}).status == 201
    log = Path(host_api.wait_for_status("big", {"running"})["runtime_dir"])
    console = next(log.glob("*.log"))
    with console.open("ab") as out:
        out.write(b"x" * HUGE)
    answer = host_api.request("GET", "/api/v1/vms/big/logs?tail=10")
    assert answer.status == 200
    assert 0 < len(answer.body) <= MAX_TAIL_BYTES and b"x" * 4096 in answer.body
