"""The real ``volantd`` executable: generated options, ``serve``, ``migrate``, JSON logs,
``--stop-vms-on-exit``."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from volant_core.cli.client import ApiClient, ApiError
from volant_core.cli.volantd import ENVIRONMENT_ONLY, option_name
from volant_core.settings import ENVIRONMENT
from volant_core.testing.cli import VOLANTD
from volant_core.testing.daemon import volantd_process
from volant_core.testing.processes import signal_burst
from volant_core.testing.waiting import eventually, free_port


def volantd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run volantd to completion."""
    return subprocess.run(
        [str(VOLANTD), *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


def test_help_lists_an_option_for_every_variable() -> None:
    shown = volantd("--help").stdout
    for variable in ENVIRONMENT.keys() - ENVIRONMENT_ONLY:
        assert f"{option_name(variable)} " in shown or f"{option_name(variable)}," in shown, variable
        assert f"env {variable}" in " ".join(shown.split()), variable
    for option in ("--log-format", "--stop-vms-on-exit", "--listen", "--db", "migrate"):
        assert option in shown


def test_options_are_validated_like_the_variables(tmp_path: Path) -> None:
    bad = volantd("--state-dir", str(tmp_path), "--subnet", "not-a-subnet")
    assert bad.returncode == 1 and "--subnet" in bad.stderr
    clash = volantd("--state-dir", str(tmp_path), "--kernel", "/a", "--kernel-vmlinux", "/b")
    assert clash.returncode == 2 and "contradicts" in clash.stderr


def test_migrate_twice(tmp_path: Path) -> None:
    first = volantd("migrate", "--state-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    database = tmp_path / "state.db"
    assert first.stdout.splitlines()[0].startswith(f"{database}: applied ")
    versions = first.stdout.splitlines()[1]
    second = volantd("migrate", "--state-dir", str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert versions.startswith("schema versions: ")
    assert second.stdout.splitlines() == [f"{database}: up to date", versions]
    elsewhere = tmp_path / "other.db"
    assert "applied" in volantd("migrate", "--db-path", str(elsewhere)).stdout and elsewhere.exists()


def test_json_logs_and_graceful_sigterm(tmp_path: Path) -> None:
    """Serve with ``--log-format json`` (and ``--stop-vms-on-exit``, with no VM to stop), stop with
    SIGTERM: volantd exits 0 and every line it logged is a JSON object.
    """
    port = free_port()
    argv = ["--log-format", "json", "--stop-vms-on-exit"]
    with volantd_process(tmp_path, port, extra_args=argv) as daemon:
        assert daemon.client().send("GET", "/api/v1/vms").status == 200
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(timeout=60) == 0
    lines = (tmp_path / "volantd.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)
    messages = [entry["message"] for entry in entries]
    assert any("listening on" in m for m in messages) and "volantd stopping" in messages


def test_a_burst_of_sigterms_still_stops_it(tmp_path: Path) -> None:
    """SIGTERMs in a burst (a supervisor and a user both stopping it): a handler that runs while
    another runs must not deadlock volantd: it stops.
    """
    with volantd_process(tmp_path, free_port()) as daemon:
        assert daemon.client().send("GET", "/healthz").status == 200
        signal_burst(daemon.process.pid, signal.SIGTERM)
        # A SIGTERM landing after the shutdown, once Python restored the default handlers, ends it.
        assert daemon.process.wait(timeout=60) in (0, -signal.SIGTERM)
    assert "volantd stopping" in (tmp_path / "volantd.log").read_text()


def test_serve_subcommand_takes_the_same_options(tmp_path: Path) -> None:
    """``volantd serve --listen ...`` serves like ``volantd --listen ...``; options given before
    ``serve`` apply too, and an option after it wins.
    """
    port = free_port()
    argv = [str(VOLANTD), "--log-format", "json", "--listen", "127.0.0.1:1", "serve"]
    argv += ["--listen", f"127.0.0.1:{port}", "--state-dir", str(tmp_path)]
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        client = ApiClient(f"http://127.0.0.1:{port}", timeout=2)
        eventually(lambda: _answers(client), "volantd serve answering on the port given after serve")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    assert (tmp_path / "state.db").exists()
    assert all(json.loads(line)["level"] for line in (tmp_path / "serve.log").read_text().splitlines())


def _answers(client: ApiClient) -> bool:
    try:
        return client.send("GET", "/healthz").status == 200
    except ApiError:
        return False
