"""Against a real `prefect server start` on 127.0.0.1 (fresh PREFECT_HOME): `void-batch run` in a
separate process, joining this session's Ray cluster by address, then the flow run, its task
runs (named after their shots; the flow run tagged with the shot ids) and its artifacts are read
back through the REST API."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from manifests.loader import write_manifest
from testkit.flows import PLUGIN, REPO, TESTS, tiny_rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def prefect_server_process(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "server-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 (the server writes to it until killed)
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host",
                             "127.0.0.1", "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"prefect server exited: {(tmp_path / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail("prefect server did not become healthy in 120 s")
    yield api
    proc.terminate()
    proc.wait(30)
    log.close()


def test_run_against_real_server_reads_back_runs_tasks_artifacts(
        prefect_server_process, ray_local, tiny_shots, tmp_path):
    api = prefect_server_process
    dirs = tiny_shots(2)
    manifest, out = tmp_path / "m.parquet", tmp_path / "out"
    write_manifest(tiny_rows(dirs), manifest)
    env = dict(os.environ, PREFECT_API_URL=api, RAY_AUTH_MODE="token",
               PREFECT_HOME=str(tmp_path / "client-home"),
               PYTHONPATH=os.pathsep.join([str(TESTS), str(REPO)]))
    gcs = ray_local.get_runtime_context().gcs_address
    proc = subprocess.run([sys.executable, "-m", "void_batch.cli", "run", str(manifest),
                           "--out", str(out), "--cache", str(tmp_path / "cache"),
                           "--ray-address", gcs, "--plugin", PLUGIN],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"Prefect API: {api}" in proc.stderr

    with httpx.Client(base_url=api, timeout=30) as c:
        runs = c.post("/flow_runs/filter", json={"limit": 10}).json()
        assert len(runs) == 1
        run = runs[0]
        assert run["state_type"] == "COMPLETED"
        assert Path(run["parameters"]["options"]["manifest"]) == manifest
        tasks = c.post("/task_runs/filter",
                       json={"flow_runs": {"id": {"any_": [run["id"]]}}, "limit": 200}).json()
        # One task run per executed stage (gate: passes=2, decided in the flow, no task run).
        assert sorted(t["name"] for t in tasks) == sorted(
            f"{stage}-{d.name}" for d in dirs
            for stage in ("decode", "pass1", "pass2", "encode", "publish"))
        assert {t["state_type"] for t in tasks} == {"COMPLETED"}
        assert all(not t["tags"] for t in tasks)  # no per-task tag-concurrency leases
        assert {d.name for d in dirs} <= set(run["tags"])
        for d in dirs:  # the UI's tag filter finds the run of a shot
            found = c.post("/flow_runs/filter",
                           json={"flow_runs": {"tags": {"all_": [d.name]}}}).json()
            assert [r["id"] for r in found] == [run["id"]]
        arts = c.post("/artifacts/filter", json={"artifacts": {"flow_run_id": {
            "any_": [run["id"]]}}}).json()
        by_key = {a["key"]: a for a in arts if a.get("key")}
        table = by_key["void-batch-shots"]
        data = table["data"] if isinstance(table["data"], list) else json.loads(table["data"])
        assert sorted(r["shot"] for r in data) == sorted(d.name for d in dirs)
        assert {r["status"] for r in data} == {"ok"}
        assert float(by_key["void-batch-progress"]["data"]) == 100.0
        assert "void-batch-summary" in by_key
