"""The documented deployment, as infra/README.md gives it, against a real Prefect server (the
local one the first CLI run started on a loopback port): a process work pool, `prefect deploy`
from the repo root, a deployment run, and a process worker that picks it up and runs the
nightly flow to completion on tiny shots (the engine on the session's Ray head)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import httpx

from flows.report import read_report
from testkit.cli import services_status
from testkit.flows import REPO


def _prefect(*args: str, env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "prefect", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"prefect {' '.join(args)}:\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-3000:]}"
    return proc


def test_prefect_deploy_from_repo_root_and_a_worker_runs_it(first_run, services_home,
                                                           propagate_manifest, tmp_path):
    _, env = services_home
    status = services_status(env)
    api = status["prefect"]["api_url"]
    head = status["ray"]
    env = {**env, "PREFECT_API_URL": api, "RAY_ADDRESS": head["address"], "RAY_AUTH_MODE":
           "token", "RAY_AUTH_TOKEN_PATH": head["token_path"], "PREFECT_HOME":
           str(tmp_path / "worker-home")}
    env.pop("VOID_BATCH_HOME", None)  # the pull step finds the checkout void_batch runs from

    # The commands of infra/README.md, from the repo root.
    _prefect("work-pool", "create", "void-batch-cpu", "--type", "process", env=env)
    out = _prefect("--no-prompt", "deploy", "--all", "--prefect-file", "infra/prefect.yaml",
                   env=env)
    assert "nightly-batch/nightly" in out.stdout, out.stdout[-2000:]
    with httpx.Client(base_url=api, timeout=30) as c:
        dep = c.get("/deployments/name/nightly-batch/nightly").json()
        assert dep["schedules"][0]["schedule"]["cron"] == "0 2 * * *"
        assert dep["schedules"][0]["schedule"]["timezone"] == "UTC"
        assert dep["pull_steps"] == [{"void_batch.services.deployment.use_checkout": {}}]

    params = {"manifest": str(propagate_manifest), "output_root": str(tmp_path / "out"),
              "cache": str(tmp_path / "cache"), "weights": None}
    run = _prefect("deployment", "run", "nightly-batch/nightly", "--params",
                   json.dumps(params), env=env)
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", run.stdout).group(1)
    worker_env = {**env, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    _prefect("worker", "start", "--pool", "void-batch-cpu", "--run-once", env=worker_env,
             timeout=300)

    with httpx.Client(base_url=api, timeout=30) as c:
        flow_run = c.get(f"/flow_runs/{run_id}").json()
        logs = c.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}}).json()
    assert flow_run["deployment_id"] == dep["id"]
    assert flow_run["state_type"] == "COMPLETED", "\n".join(x["message"] for x in logs)[-3000:]
    rows = read_report(tmp_path / "out")
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
