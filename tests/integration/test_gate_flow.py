"""passes="auto": the flow's morphing gate runs pass 2 only for the shot whose synthesized
content morphs (issue 5, "the flow runs pass 2 only for the second")."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from flows.nightly_batch import nightly_batch
from flows.report import read_report
from manifests.loader import write_manifest
from tasks.options import RunOptions
from testkit.flows import PLUGIN
from testkit.synth import gate_clip, write_video


def _write_shot(folder: Path, kind: str) -> dict:
    from void_engine.io import open_writer

    video, masks = gate_clip(kind)
    folder.mkdir(parents=True)
    write_video(str(folder / "plate.mkv"), video)
    with open_writer(str(folder / "quadmask.mkv"), "ffv1", fps=Fraction(12),
                     size=masks.shape[1:], channels=1) as wr:
        for m in masks:
            wr.write(m)
    return {"shot_id": kind, "plate_uri": str(folder / "plate.mkv"),
            "quadmask_uri": str(folder / "quadmask.mkv"), "prompt": "plate", "codec": "ffv1",
            "passes": "auto", "engine": "test-identity"}


def test_gate_runs_pass2_only_for_the_morphing_shot(batch_env, tmp_path):
    rows = [_write_shot(tmp_path / "shots" / k, k) for k in ("rigid", "morph")]
    manifest, log = tmp_path / "m.parquet", tmp_path / "engine.log"
    write_manifest(rows, manifest)
    state = nightly_batch(options=RunOptions(
        manifest=str(manifest), output_root=str(tmp_path / "out"),
        cache=str(tmp_path / "cache"), plugins=[PLUGIN], engine_opts={"log": str(log)},
        review=False), return_state=True)
    assert state.is_completed(), state.message
    report = {r["shot_id"]: r for r in read_report(tmp_path / "out")}
    assert report["rigid"]["status"] == report["morph"]["status"] == "ok"
    assert report["rigid"]["gate_score"] < report["rigid"]["gate_threshold"]
    assert report["morph"]["gate_score"] > report["morph"]["gate_threshold"]
    assert report["rigid"]["gate_decision"] == "pass 1 only"
    assert report["morph"]["gate_decision"] == "pass 2"
    assert report["rigid"]["passes_run"] == 1 and report["morph"]["passes_run"] == 2
    assert sorted(line.split()[0] for line in log.read_text().splitlines()) == [
        "pass1", "pass1", "pass2"]
