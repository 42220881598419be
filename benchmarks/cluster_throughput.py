"""Batch throughput against the number of engine actors, on a multi-node Ray cluster started
on this machine with `ray start` (token auth, fake GPUs: one engine actor per GPU), with a
stand-in engine whose pass costs a fixed time per shot (benchmarks/_fixed_cost_engine.py).

    python benchmarks/cluster_throughput.py [--actors 1,2,4] [--shots 24] [--cost 2.0]

For each actor count n the cluster has a head and a worker node sharing the n GPUs (n=1: the
head alone), a fresh one per n. A warm-up run of n shots loads the actors; then a run of
--shots new shots is timed from the flow's start to its end. Printed: shots/min, speed-up over
one ideal actor (no overhead: 1/cost shots per second) and the efficiency against n of them.
The Prefect API is one temporary local server shared by the runs. Ray's fake GPUs are logical:
the stand-in engine sleeps, so the scaling shown is the orchestration's (placement,
round-robin, cache), not a GPU's.

The flow keeps VOID_BATCH_WINDOW shots in flight (default 3): with more actors than that, the
actors wait for work. Measured on the 2-core dev box, 16 shots at 2 s (ideal 30 shots/min per
actor): 1 actor 29.0 shots/min, 2 actors on 2 nodes 56.0, 4 actors on 2 nodes 73.0 with the
default window and 104.8 with VOID_BATCH_WINDOW=8 (87 % of 4 ideal actors).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE), str(REPO / "tests")]
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="vb-bench-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH",
                                                                                   "")])


def rows(work: Path, prefix: str, n: int) -> list[dict]:
    out = []
    for i in range(n):
        d = work / "shots" / f"{prefix}{i:04d}"
        d.mkdir(parents=True)
        (d / "plate.mp4").write_bytes(os.urandom(64))  # distinct bytes: distinct cache keys
        (d / "quadmask.mp4").write_bytes(os.urandom(64))
        out.append({"shot_id": f"{prefix}{i:04d}", "plate_uri": str(d / "plate.mp4"),
                    "quadmask_uri": str(d / "quadmask.mp4"), "passes": "1"})
    return out


def one(n_actors: int, n_shots: int, cost: float, address: str) -> dict:
    """In a fresh process (the flow's actor handles are per process): warm up, then time."""
    import _fixed_cost_engine  # noqa: F401
    import ray

    from flows.nightly_batch import nightly_batch
    from flows.report import read_report
    from manifests.loader import write_manifest
    from tasks.options import RunOptions

    work = Path(tempfile.mkdtemp(prefix="vb-cluster-bench-"))
    ray.init(address=address, namespace="void-batch", log_to_driver=False,
             logging_level="ERROR")

    def run(name: str, n: int):
        write_manifest(rows(work, name, n), work / f"{name}.parquet")
        return nightly_batch(options=RunOptions(
            manifest=str(work / f"{name}.parquet"), output_root=str(work / name),
            engine="bench-fixed-cost", engine_opts={"cost": cost}, cache=str(work / "cache"),
            plugins=["_fixed_cost_engine"]), return_state=True)

    run("w", n_actors)  # loads the actors
    t = time.perf_counter()
    state = run("t", n_shots)
    wall = time.perf_counter() - t
    ok = sum(r["status"] == "ok" for r in read_report(work / "t"))
    nodes = {a["NodeID"] for a in ray.nodes() if a["Alive"]}
    return {"actors": n_actors, "nodes": len(nodes), "shots": n_shots, "ok": ok,
            "wall_s": wall, "state": state.name}


def measure(n_actors: int, n_shots: int, cost: float, api_url: str) -> dict:
    from testkit.raycluster import RayCluster

    root = Path(tempfile.mkdtemp(prefix="vb-cluster-"))
    cluster = RayCluster(root, dict(os.environ))
    head_gpus = (n_actors + 1) // 2 if n_actors > 1 else 1
    try:
        cluster.start_head(num_cpus=2, num_gpus=head_gpus)
        if n_actors > 1:
            cluster.add_worker("worker", num_cpus=2, num_gpus=n_actors - head_gpus)
        env = {**cluster.env, "PREFECT_API_URL": api_url}
        out = subprocess.run([sys.executable, __file__, "--one", str(n_actors), "--shots",
                              str(n_shots), "--cost", str(cost), "--address", cluster.address],
                             env=env, capture_output=True, text=True, timeout=3600)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        cluster.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--actors", default="1,2,4")
    ap.add_argument("--shots", type=int, default=24)
    ap.add_argument("--cost", type=float, default=2.0, help="seconds per shot in the engine")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--address", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one, a.shots, a.cost, a.address)))
        return
    from void_batch.services.temporary_server import TemporaryPrefectServer

    server = TemporaryPrefectServer()
    server.wait_healthy()
    results = [measure(int(n), a.shots, a.cost, server.api_url) for n in a.actors.split(",")]
    window = os.environ.get("VOID_BATCH_WINDOW", "3 (default)")
    print(f"{a.shots} shots, stand-in engine {a.cost:.1f} s/shot "
          f"(ideal: {60 / a.cost:.0f} shots/min per actor), VOID_BATCH_WINDOW={window}")
    # speed-up against one ideal actor (1/cost shots per second: no overhead at all)
    print(f"{'actors':>6} {'nodes':>5} {'ok':>4} {'wall s':>8} {'shots/min':>10} "
          f"{'speed-up':>8} {'efficiency':>10}")
    for r in results:
        rate = r["shots"] / r["wall_s"]
        print(f"{r['actors']:>6} {r['nodes']:>5} {r['ok']:>4} {r['wall_s']:>8.1f} "
              f"{60 * rate:>10.1f} {rate * a.cost:>8.2f} {rate * a.cost / r['actors']:>10.0%}")
    server.stop()


if __name__ == "__main__":
    main()
