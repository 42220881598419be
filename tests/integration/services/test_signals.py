"""SIGTERM, SIGINT (twice) and SIGKILL sent to a real `void-batch run` while the test engine is
busy in a pass (it sleeps `delay` s per call and logs each call): the command exits non-zero in
seconds, leaves nothing of its own running, and the persistent services keep running.

The time bounds below are liveness checks (does the command exit at all once told to, rather
than running its batch to the end), set far above the measured 1-3 s, not speed targets."""
from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from flows.report import read_report
from testkit.cli import (
    cli_env,
    descendants,
    services_status,
    start_void_batch,
    still_running,
    wait_until,
)
from testkit.flows import PLUGIN, REPO

GRACE_S = 5  # VOID_BATCH_STOP_GRACE_S for these runs
DELAY_S = 3  # seconds per engine pass: 4 shots take >= 12 s, signals land mid-run

# The flows stop submitting and write the report of what finished once they poll
# flows.control.stop_requested(); until they do, the CLI aborts at the end of the grace period
# and the report assertion is expected to fail.
FLOWS_HONOUR_STOP = any("stop_requested" in p.read_text() for p in (REPO / "flows").glob("*.py")
                        if p.name != "control.py")


def _start(tmp_path: Path, env: dict):
    engine_log = tmp_path / "engine.log"
    out = tmp_path / "out"
    proc = start_void_batch("run", str(tmp_path.parent / "m.parquet"), "--out", str(out),
                            "--cache", str(tmp_path / "cache"), "--plugin", PLUGIN,
                            "--engine-opt", f"delay={DELAY_S}", "--engine-opt",
                            f"log={engine_log}", env={**env, "VOID_BATCH_STOP_GRACE_S":
                                                      str(GRACE_S)},
                            log=tmp_path / "cli.log")
    # Signal only once a pass is running in the engine actor.
    wait_until(lambda: engine_log.exists() and engine_log.read_text().strip()
               or proc.poll() is not None, 240, "the first engine pass")
    assert proc.poll() is None, (tmp_path / "cli.log").read_text()[-3000:]
    return proc, out


@pytest.fixture
def run_dir(tmp_path, tiny_manifest):
    d = tmp_path / "run"
    d.mkdir()
    (tmp_path / "m.parquet").symlink_to(tiny_manifest)
    return d


def test_sigterm_stops_the_run_and_exits_nonzero(first_run, services_home, run_dir):
    _, env = services_home
    proc, out = _start(run_dir, env)
    children = descendants(proc.pid)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(GRACE_S + 30)
    took = time.monotonic() - t0
    log = (run_dir / "cli.log").read_text()
    assert rc == 128 + signal.SIGTERM, log[-3000:]
    assert took < GRACE_S + 20, took
    assert "SIGTERM: stopping" in log
    wait_until(lambda: not still_running(children), 15, "the command's child processes")
    status = services_status(env)  # the persistent services are meant to outlive it
    assert status["prefect"]["healthy"] and status["ray"]["running"]
    if not FLOWS_HONOUR_STOP:
        pytest.xfail("the flows do not poll flows.control.stop_requested() yet")
    rows = read_report(out)  # the report of what finished, every shot accounted for
    assert sorted(r["shot_id"] for r in rows) == [f"shot{i:02d}" for i in range(4)]
    assert any(r["status"] != "ok" for r in rows)  # stopped before the 4th shot's pass


def test_second_sigint_aborts_and_marks_the_flow_run_crashed(first_run, services_home, run_dir):
    _, env = services_home
    proc, out = _start(run_dir, env)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)  # the second one lands while the first stop is still under way
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(30)
    log = (run_dir / "cli.log").read_text()
    assert rc == 128 + signal.SIGINT, log[-3000:]
    assert time.monotonic() - t0 < 15
    assert "aborting: second signal (SIGINT)" in log
    api = services_status(env)["prefect"]["api_url"]
    runs = httpx.post(f"{api}/flow_runs/filter", json={"sort": "START_TIME_DESC", "limit": 20},
                      timeout=30).json()
    (mine,) = [r for r in runs if r["parameters"]["options"]["output_root"] == str(out)]
    # never left Running: marked Crashed by the abort (or Cancelled, had the flow's own stop
    # finished first)
    assert mine["state_type"] in ("CRASHED", "CANCELLED"), mine["state"]
    if mine["state_type"] == "CRASHED":
        assert "second signal" in mine["state"]["message"]


def test_sigkill_leaves_no_process_of_the_command_running(run_dir, tmp_path):
    """kill -9 gives the command no chance to clean up: what it started for itself (here the
    per-command Prefect server and local Ray of VOID_BATCH_LOCAL_SERVICES=temporary) must
    notice that its parent is gone."""
    env = cli_env(tmp_path / "home", VOID_BATCH_LOCAL_SERVICES="temporary")
    proc, _ = _start(run_dir, env)
    children = descendants(proc.pid)
    names = {p.name() for p in children}
    assert "gcs_server" in names, names  # the command's own Ray (ray.init)
    assert any("uvicorn" in " ".join(p.cmdline()) for p in children)  # its Prefect server
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    try:
        wait_until(lambda: not still_running(children), 60,
                   "the killed command's processes to exit")
    except AssertionError:
        left = [f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in still_running(children)]
        raise AssertionError("still running after kill -9 of the command:\n" +
                             "\n".join(left)) from None
