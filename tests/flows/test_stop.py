"""A stop request (the CLI's SIGINT/SIGTERM handler calls flows.control.request_stop): no new
stage starts, the engine call in progress is cancelled, every shot is accounted for in the
report, and the flow ends Cancelled within seconds, not after the batch."""
from __future__ import annotations

import threading
import time

import pytest

from flows import control
from flows.nightly_batch import nightly_batch
from flows.report import read_report
from manifests.loader import write_manifest
from tasks.options import RunOptions
from testkit.flows import PLUGIN, tiny_rows


@pytest.fixture
def stop_after_reset():
    control.reset()
    yield
    control.reset()


def test_stop_request_cancels_and_reports_every_shot(batch_env, stop_after_reset, tiny_shots,
                                                     tmp_path):
    dirs = tiny_shots(5)
    manifest, log = tmp_path / "m.parquet", tmp_path / "engine.log"
    write_manifest(tiny_rows(dirs, passes="1"), manifest)
    options = RunOptions(manifest=str(manifest), output_root=str(tmp_path / "out"),
                         cache=str(tmp_path / "cache"), plugins=[PLUGIN],
                         engine_opts={"log": str(log), "delay": 20})

    def stop_when_pass1_runs():
        while not (log.exists() and log.read_text().strip()):
            time.sleep(0.05)
        control.request_stop("SIGTERM")

    threading.Thread(target=stop_when_pass1_runs, daemon=True).start()
    t0 = time.monotonic()
    state = nightly_batch(options=options, return_state=True)
    took = time.monotonic() - t0
    assert state.is_cancelled(), state
    assert "SIGTERM" in state.message
    assert took < 20, f"the 20 s engine call was not cancelled ({took:.1f} s)"
    rows = read_report(tmp_path / "out")
    assert sorted(r["shot_id"] for r in rows) == sorted(d.name for d in dirs)
    assert {r["status"] for r in rows} == {"cancelled"}
    assert all("SIGTERM" in r["error"] for r in rows)
