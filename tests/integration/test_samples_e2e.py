"""The quick start on the real samples: `void-batch manifest init` then `void-batch run` with the
propagate engine on the two small shots (BigBen whole; ducky-float, 1296x720, cut to 12 frames
through the manifest's first_frame/last_frame to keep the default suite short); then again, all
from cache. Every sample at full length, the 4K ones included, runs under -m slow."""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.report import read_report
from manifests.loader import write_manifest
from void_batch.cli import main as cli


def _quick_start(samples_dir, tmp_path, shots: list[str] | None,
                 frame_ranges: dict[str, tuple[int, int]] | None = None):
    manifest, out, cache = tmp_path / "m.parquet", tmp_path / "out", tmp_path / "cache"
    assert cli(["manifest", "init", str(samples_dir), "-o", str(manifest)]) == 0
    if frame_ranges:
        rows = pq.read_table(manifest).to_pylist()
        for r in rows:
            if r["shot_id"] in frame_ranges:
                r["first_frame"], r["last_frame"] = frame_ranges[r["shot_id"]]
        write_manifest(rows, manifest)
    assert cli(["manifest", "check", str(manifest)]) == 0
    args = ["run", str(manifest), "--out", str(out), "--engine", "propagate",
            "--cache", str(cache)] + (["--shots", ",".join(shots)] if shots else [])
    assert cli(args) == 0
    rows = read_report(out)
    assert rows and {r["status"] for r in rows} == {"ok"}
    for r in rows:
        assert r["engine"] == "propagate"
        assert r["executed"] == ["decode", "pass1", "encode"]
        assert "pass2: engine propagate has no pass 2" in r["skipped"]
        for uri in (r["result_uri"], r["matte_uri"], r["review_uri"]):
            assert Path(uri).is_file() and Path(uri).parent == out / r["shot_id"]
    assert (out / "report.html").read_text().count("<img") == len(rows)
    assert cli(args) == 0  # again: nothing executes
    for r in read_report(out):
        assert r["executed"] == [] and r["cache_hits"] == ["decode", "pass1", "encode"]
    assert cli(["report", str(out)]) == 0
    return rows


def test_quick_start_small_samples(batch_env, samples_dir, tmp_path):
    rows = _quick_start(samples_dir, tmp_path, ["BigBen", "ducky-float"],
                        frame_ranges={"ducky-float": (20, 31)})
    assert sorted(r["shot_id"] for r in rows) == ["BigBen", "ducky-float"]
    from void_engine.io import probe

    duck = next(r for r in rows if r["shot_id"] == "ducky-float")
    assert probe(duck["result_uri"]).frames == 12


@pytest.mark.slow
def test_quick_start_all_samples(batch_env, samples_dir, tmp_path):
    rows = _quick_start(samples_dir, tmp_path, None)
    assert len(rows) == 4
