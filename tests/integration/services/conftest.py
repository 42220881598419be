"""One Prefect home for the CLI subprocesses of these tests, whose persistent local services
(Prefect server, Ray head) the first `void-batch run` starts; stopped, and checked gone, at the
end of the session."""
from __future__ import annotations

import pytest

from manifests.loader import write_manifest
from testkit.cli import cli_env, services_status, still_running, void_batch
from testkit.flows import PLUGIN, tiny_rows, write_shot


@pytest.fixture(scope="session")
def services_home(tmp_path_factory):
    import psutil

    home = tmp_path_factory.mktemp("svc-home")
    env = cli_env(home)
    yield home, env
    status = services_status(env)
    pids = [status[s]["pid"] for s in ("prefect", "ray") if status[s]["running"]]
    procs = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            procs += [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    void_batch("server", "stop", env=env, timeout=120)
    assert not still_running(procs), "`void-batch server stop` left processes running"


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory):
    """Four tiny shots for the test engine (which sleeps `delay` s per pass when asked)."""
    d = tmp_path_factory.mktemp("svc-shots")
    dirs = [write_shot(d / "shots", f"shot{i:02d}", seed=i) for i in range(4)]
    manifest = d / "m.parquet"
    write_manifest(tiny_rows(dirs, passes="1"), manifest)
    return manifest


@pytest.fixture(scope="session")
def first_run(services_home, tiny_manifest, tmp_path_factory):
    """The first `void-batch run` of a fresh Prefect home: it starts both services."""
    home, env = services_home
    out = tmp_path_factory.mktemp("svc-out")
    assert not services_status(env)["prefect"]["running"]
    args = ("run", str(tiny_manifest), "--out", str(out / "out"), "--cache", str(out / "cache"),
            "--plugin", PLUGIN)
    proc = void_batch(*args, env=env)
    return {"args": args, "proc": proc, "out": out / "out", "status": services_status(env)}
