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
def propagate_manifest(tiny_manifest):
    """The same shots for the `propagate` engine: what a worker without the test plugin runs
    (the flow checks the manifest's engine column before it imports `plugins`)."""
    import pyarrow.parquet as pq

    rows = [{**r, "engine": "propagate"} for r in pq.read_table(tiny_manifest).to_pylist()]
    manifest = tiny_manifest.with_name("m-propagate.parquet")
    write_manifest(rows, manifest)
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


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API on loopback (moto in server mode), with credentials of its own: what a
    test puts in the environment of a process (or this one) to reach it."""
    import secrets

    from moto.server import ThreadedMotoServer

    from testkit.cli import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "AKIAVOIDBATCHTEST", "AWS_SECRET_ACCESS_KEY":
           f"secret-{secrets.token_hex(16)}", "AWS_DEFAULT_REGION": "us-east-1",
           # s3fs (through fsspec's config) and botocore both read these
           "FSSPEC_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    yield env
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch, request):
    """A fresh bucket; this process's environment points at the S3 server."""
    import re

    import boto3

    for k, v in s3_server.items():
        monkeypatch.setenv(k, v)
    _fresh_s3fs()
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-")
    boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL"]).create_bucket(Bucket=name)
    yield name
    _fresh_s3fs()


def _fresh_s3fs() -> None:
    """fsspec caches filesystem instances (and s3fs its listings): start from the environment."""
    import fsspec.config
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fsspec.config.conf.clear()
    fsspec.config.set_conf_env(fsspec.config.conf)
