"""QC figures in every report: measured while encode composites each plate frame, kept in the
encode entry (a cached re-run still shows them), flagged against the run's thresholds."""
from __future__ import annotations

import math

from flows.nightly_batch import nightly_batch
from flows.report import read_report
from manifests.loader import write_manifest
from tasks.options import RunOptions
from testkit.flows import PLUGIN, tiny_rows


def test_qc_figures_are_reported_kept_and_flagged(batch_env, tiny_shots, tmp_path):
    dirs = tiny_shots(2, frames=8)
    manifest = tmp_path / "m.parquet"
    write_manifest(tiny_rows(dirs, passes="1"), manifest)
    common = dict(manifest=str(manifest), output_root=str(tmp_path / "out"),
                  cache=str(tmp_path / "cache"), plugins=[PLUGIN])

    state = nightly_batch(options=RunOptions(**common, qc_flicker_max=1e9, qc_seam_max=1e9),
                          return_state=True)
    assert state.is_completed(), state.message
    first = {r["shot_id"]: r for r in read_report(tmp_path / "out")}
    for r in first.values():
        assert not math.isnan(r["qc_seam"]) and r["qc_seam"] > 0
        assert not math.isnan(r["qc_flicker_ratio"]) and r["qc_flicker_ratio"] > 0
        assert r["qc_flagged"] is False and r["qc_reasons"] == ""

    # Stricter thresholds on a cached re-run: same figures (from the store), now flagged.
    state = nightly_batch(options=RunOptions(**common, qc_flicker_max=1e-3, qc_seam_max=1e-3),
                          return_state=True)
    assert state.is_completed(), state.message
    for r in read_report(tmp_path / "out"):
        assert r["executed"] == []
        assert r["qc_seam"] == first[r["shot_id"]]["qc_seam"]
        assert r["qc_flagged"] is True
        assert "flicker" in r["qc_reasons"] and "seam" in r["qc_reasons"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "look: flicker" in html
