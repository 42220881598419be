"""The production setup of infra/README.md, end to end on this machine:

- PostgreSQL: a cluster initdb'd and started by the test on a loopback port (as the unprivileged
  `postgres` user when the test runs as root);
- `prefect server database upgrade -y` (the migrations), then `prefect server start` on it;
- from the repo root, the documented commands: a process work pool, `prefect deploy --all
  --prefect-file infra/prefect.yaml`, a deployment run;
- a process worker (`prefect worker start --run-once`) picks the run up and runs the nightly
  flow to completion on tiny shots, its engine on the session's Ray head.

Then the run is read back from the API and found in PostgreSQL's own tables."""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from flows.report import read_report
from testkit.cli import free_port, services_status, wait_until
from testkit.flows import REPO


def _pg_bin() -> Path:
    found = shutil.which("pg_ctl") or next(iter(sorted(glob.glob(
        "/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)), None)
    if not found:
        pytest.fail("PostgreSQL is not installed (scripts/install.sh installs it)")
    return Path(os.path.realpath(found)).parent


def _as_owner(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run as `postgres` then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.getuid() == 0 else cmd


@pytest.fixture
def postgres():
    bindir, port = _pg_bin(), free_port()
    root = Path(tempfile.mkdtemp(prefix="void-pg-"))
    if os.getuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, log = root / "data", root / "pg.log"

    def run(*cmd: str) -> None:
        subprocess.run(_as_owner(list(cmd)), check=True, capture_output=True, timeout=120)

    run(str(bindir / "initdb"), "-D", str(data), "-U", "voidbatch", "--auth=trust",
        "--encoding=UTF8")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start")
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "voidbatch",
            "prefect")
        yield {"port": port, "bindir": bindir,
               "url": f"postgresql+asyncpg://voidbatch@127.0.0.1:{port}/prefect"}
    finally:
        subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                                  "-w", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def prefect_on_postgres(postgres, services_home, tmp_path):
    _, env = services_home
    port = free_port()
    server_env = {**env, "PREFECT_HOME": str(tmp_path / "server-home"),
                  "PREFECT_SERVER_DATABASE_CONNECTION_URL": postgres["url"]}
    _prefect("server", "database", "upgrade", "-y", env=server_env, timeout=300)
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 (written until the server ends)
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host",
                               "127.0.0.1", "--port", str(port)], env=server_env, stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api"

    def healthy() -> bool:
        assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        try:
            return httpx.get(f"{api}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, 180, "the Prefect server on PostgreSQL", interval=0.5)
        yield api
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def _prefect(*args: str, env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "prefect", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"prefect {' '.join(args)}:\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-3000:]}"
    return proc


def test_deploy_on_postgres_and_a_worker_runs_the_batch(postgres, prefect_on_postgres,
                                                        first_run, services_home,
                                                        propagate_manifest, tmp_path):
    api = prefect_on_postgres
    _, env = services_home
    head = services_status(env)["ray"]
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

    # propagate: an engine the worker has without the test plugin
    params = {"options": {"manifest": str(propagate_manifest),
                          "output_root": str(tmp_path / "out"),
                          "cache": str(tmp_path / "cache"), "weights": None}}
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

    # Recorded in PostgreSQL's tables, not in some SQLite file.
    psql = subprocess.run([str(postgres["bindir"] / "psql"), "-h", "127.0.0.1", "-p",
                           str(postgres["port"]), "-U", "voidbatch", "-d", "prefect", "-tAc",
                           f"select state_type from flow_run where id = '{run_id}'"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert psql.stdout.strip() == "COMPLETED"
    assert not list((tmp_path / "server-home").glob("*.db"))
