"""Prefect's server on a real PostgreSQL, as infra/README.md sets it up for production: a
cluster initdb'd and started by the test on a loopback port (as the unprivileged `postgres`
user when the test runs as root), `prefect server database upgrade` (the migrations), `prefect
server start`, and a `void-batch run` against it; the run is read back from the API and found
in PostgreSQL's own tables."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from flows.report import read_report
from testkit.cli import free_port, services_status, void_batch, wait_until


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


def test_prefect_server_on_postgres_runs_a_batch(postgres, first_run, services_home,
                                                 propagate_manifest, tmp_path):
    _, env = services_home
    head = services_status(env)["ray"]
    port = free_port()
    server_env = {**env, "PREFECT_HOME": str(tmp_path / "server-home"),
                  "PREFECT_SERVER_DATABASE_CONNECTION_URL": postgres["url"]}
    migrate = subprocess.run([sys.executable, "-m", "prefect", "server", "database", "upgrade",
                              "-y"], env=server_env, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 (written until the server ends)
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host",
                               "127.0.0.1", "--port", str(port)], env=server_env, stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api"
    try:
        def healthy() -> bool:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                return httpx.get(f"{api}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 180, "the Prefect server on PostgreSQL", interval=0.5)
        client_env = {**env, "PREFECT_API_URL": api, "RAY_AUTH_MODE": "token",
                      "RAY_AUTH_TOKEN_PATH": head["token_path"],
                      "PREFECT_HOME": str(tmp_path / "client-home")}
        out = tmp_path / "out"
        proc = void_batch("run", str(propagate_manifest), "--out", str(out), "--cache",
                          str(tmp_path / "cache"), "--ray-address", head["address"],
                          env=client_env)
        assert f"Prefect API: {api}" in proc.stderr
        assert {r["status"] for r in read_report(out)} == {"ok"}
        runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=30).json()
        assert [r["state_type"] for r in runs] == ["COMPLETED"]
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    # The run, and its task runs, are rows of PostgreSQL's tables (not some SQLite file).
    psql = subprocess.run([str(postgres["bindir"] / "psql"), "-h", "127.0.0.1", "-p",
                           str(postgres["port"]), "-U", "voidbatch", "-d", "prefect", "-tAc",
                           "select count(*) from flow_run where state_type = 'COMPLETED'"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert psql.stdout.strip() == "1"
    assert not list((tmp_path / "server-home").glob("*.db"))
