"""A two-node Ray cluster on this machine (`ray start` head + worker, one fake GPU each, token
auth) running a `void-batch run` whose cache store is on S3 (moto's server): one engine actor
per GPU, on both nodes, shots spread over them. The worker node is killed (SIGKILL of its whole
process tree) mid-run and replaced by a new node, as KubeRay or `ray up` would: Ray restarts the
lost actor there, retries the interrupted call, and every shot finishes; the entries all land in
the shared S3 store. Calls whose actor is lost while no node can take it yet go to the
surviving actor (tasks.actors.Residents.run_stage), so the batch never waits on the new node."""
from __future__ import annotations

import json

import pytest

from flows.report import read_report
from manifests.loader import write_manifest
from testkit.cli import services_status, start_void_batch, void_batch, wait_until
from testkit.flows import PLUGIN, tiny_rows, write_shot
from testkit.raycluster import RayCluster

N_SHOTS = 6
DELAY_S = 2.5  # per pass: the kill lands while both actors are busy


@pytest.fixture
def cluster(tmp_path, s3_server, services_home):
    _, env = services_home
    c = RayCluster(tmp_path, {**env, **s3_server})
    try:
        c.start_head(num_cpus=2, num_gpus=1)
        c.add_worker("worker-1", num_cpus=2, num_gpus=1)
        yield c
    finally:
        c.stop()


def test_shots_spread_over_two_nodes_survive_losing_one(cluster, s3_bucket, first_run,
                                                        services_home, tmp_path):
    import s3fs

    _, env = services_home
    dirs = [write_shot(tmp_path / "shots", f"shot{i:02d}", seed=i) for i in range(N_SHOTS)]
    manifest = tmp_path / "m.parquet"
    write_manifest(tiny_rows(dirs, passes="1"), manifest)
    engine_log, out = tmp_path / "engine.log", tmp_path / "out"
    cache = f"s3://{s3_bucket}/cache"
    run_env = {**cluster.env, "PREFECT_API_URL": services_status(env)["prefect"]["api_url"]}
    proc = start_void_batch("run", str(manifest), "--out", str(out), "--cache", cache,
                            "--ray-address", cluster.address, "--plugin", PLUGIN,
                            "--engine-opt", f"delay={DELAY_S}", "--engine-opt",
                            f"log={engine_log}", env=run_env, log=tmp_path / "cli.log")

    def calls() -> list[tuple[str, int]]:
        text = engine_log.read_text() if engine_log.exists() else ""
        return [(w, int(p)) for w, p in (line.split() for line in text.splitlines())]

    def busy_on_both_nodes():
        assert proc.poll() is None, (tmp_path / "cli.log").read_text()[-3000:]
        nodes = {cluster.node_of(pid) for _, pid in calls()}
        return {"head", "worker-1"} <= nodes

    wait_until(busy_on_both_nodes, 240, "engine calls on both nodes")
    lost = {pid for _, pid in calls() if cluster.node_of(pid) == "worker-1"}
    cluster.kill_node("worker-1")
    cluster.add_worker("worker-2", num_cpus=2, num_gpus=1, wait=False)  # the replacement
    rc = proc.wait(300)
    log = (tmp_path / "cli.log").read_text()
    assert rc == 0, log[-3000:]

    rows = read_report(out)
    assert len(rows) == N_SHOTS and {r["status"] for r in rows} == {"ok"}, rows
    by_node: dict[str, int] = {}
    for _, pid in calls():
        node = "worker-1" if pid in lost else cluster.node_of(pid)
        by_node[node] = by_node.get(node, 0) + 1
    assert by_node.get("head") and by_node.get("worker-1"), by_node  # spread over both

    def restarted_on_the_new_node():  # Ray brings the lost actor back where a GPU is free
        listed = json.loads(void_batch("actors", "list", "--json", "--ray-address",
                                       cluster.address, env=cluster.env).stdout)
        return any(cluster.node_of(a["pid"]) == "worker-2" for a in listed if a.get("pid"))

    wait_until(restarted_on_the_new_node, 120, "the lost engine actor on worker-2", 2)

    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    markers = fs.glob(f"{s3_bucket}/cache/pass1/*/_entry.json")
    assert len(markers) == N_SHOTS  # one shared store, written from every node
