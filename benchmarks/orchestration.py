"""Orchestration overhead of the batch flow (Prefect + Ray + stage cache), stage work trivial.

    python benchmarks/orchestration.py [--shots 200] [--rows 10000]

Prints: one-off start costs (Prefect ephemeral server, Ray + actor), per-shot overhead of a
first run of N tiny shots (every stage executes: store commits, actor calls, task runs), the
cached re-run against the first, and validation time of a 10,000-row manifest.
Targets (issue 4): <= 0.3 s per shot, re-run <= 5 % of first, 10k rows <= 5 s.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="vb-bench-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), str(HERE),
                                            os.environ.get("PYTHONPATH", "")])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shots", type=int, default=200)
    ap.add_argument("--rows", type=int, default=10_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vb-bench-"))

    from manifests.loader import load_manifest, write_manifest

    # --- validation of a big manifest -----------------------------------------------------
    plates = []
    for i in range(50):  # 50 distinct files shared by the rows (file checks are memoised)
        p = work / "media" / f"p{i}.mp4"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(64))
        plates.append(p)
    rows = [{"shot_id": f"s{i:05d}", "plate_uri": str(plates[i % 50]),
             "quadmask_uri": str(plates[(i + 1) % 50]), "prompt": "x", "passes": "auto",
             "engine": "void", "priority": i % 7, "tags": ["bench"],
             "clicks": None if i % 2 else '[{"frame": 0, "x": 1, "y": 2}]'} for i in range(args.rows)]
    for r in rows:
        if r["clicks"]:
            r["quadmask_uri"] = None
    big = work / "big.parquet"
    write_manifest(rows, big)
    t = time.perf_counter()
    m = load_manifest(big)
    t_validate = time.perf_counter() - t
    assert len(m.shots) == args.rows, m.errors[:3]
    print(f"validate {args.rows} rows: {t_validate:.2f} s ({len(m.errors)} errors)")

    # --- orchestration of N tiny shots ----------------------------------------------------
    import ray

    import _trivial_stages  # noqa: F401
    from flows.nightly_batch import nightly_batch
    from flows.report import read_report

    t = time.perf_counter()
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    t_ray = time.perf_counter() - t
    small = [{"shot_id": f"t{i:04d}", "plate_uri": str(plates[i % 50]),
              "quadmask_uri": str(plates[(i + 3) % 50]), "passes": "2", "priority": i % 3}
             for i in range(args.shots)]
    man = work / "tiny.parquet"
    write_manifest(small, man)
    params = dict(output_root=str(work / "out"), engine="bench-trivial",
                  cache=str(work / "cache"), plugins=["_trivial_stages"], return_state=True)

    t = time.perf_counter()
    write_manifest(small[:1], work / "one.parquet")
    st = nightly_batch(manifest=str(work / "one.parquet"), **{**params, "output_root": str(work / "o1")})
    t_warm = time.perf_counter() - t
    assert st.is_completed(), st.message

    timings = []
    for label in ("first", "cached"):
        t = time.perf_counter()
        st = nightly_batch(manifest=str(man), **params)
        timings.append(time.perf_counter() - t)
        assert st.is_completed(), st.message
        rep = read_report(work / "out")
        executed = sum(len(r["executed"]) for r in rep)
        hits = sum(len(r["cache_hits"]) for r in rep)
        print(f"{label} run, {args.shots} shots: {timings[-1]:.2f} s "
              f"({timings[-1] / args.shots * 1000:.0f} ms/shot; stages executed {executed}, "
              f"cache hits {hits})")
    print(f"start-up (Prefect ephemeral server + first flow + Ray actor): {t_warm:.2f} s; "
          f"ray.init {t_ray:.2f} s")
    print(f"re-run / first: {timings[1] / timings[0] * 100:.1f} %")
    ray.shutdown()


if __name__ == "__main__":
    main()
