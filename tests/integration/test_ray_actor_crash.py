"""The resident engine actor is killed (SIGKILL) in the middle of a run: Ray restarts it,
retries the call, and every shot still completes."""
from __future__ import annotations

import os
import signal
import threading
import time

from flows.nightly_batch import nightly_batch
from flows.report import read_report
from manifests.loader import write_manifest
from tasks.options import RunOptions
from testkit.flows import PLUGIN, tiny_rows


def test_killed_engine_actor_is_restarted_and_all_shots_finish(batch_env, tiny_shots, tmp_path):
    dirs = tiny_shots(3)
    manifest, out, log = tmp_path / "m.parquet", tmp_path / "out", tmp_path / "engine.log"
    write_manifest(tiny_rows(dirs, passes="1"), manifest)
    killed: list[int] = []

    def killer():  # wait for the first engine call, then kill the process serving it
        deadline = time.time() + 120
        while time.time() < deadline:
            if log.exists() and log.read_text().strip():
                pid = int(log.read_text().split()[1])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    state = nightly_batch(options=RunOptions(
        manifest=str(manifest), output_root=str(out), cache=str(tmp_path / "cache"),
        plugins=[PLUGIN], engine_opts={"log": str(log), "delay": 1.5}), return_state=True)
    t.join(5)
    assert killed, "the engine actor never ran"
    assert state.is_completed(), state.message
    rows = read_report(out)
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
    pids = {int(line.split()[1]) for line in log.read_text().splitlines()}
    assert killed[0] in pids and len(pids) == 2  # the killed process and its restart
