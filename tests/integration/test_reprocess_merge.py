"""Reprocessing merges into the run's report: the rerun shots' rows are replaced, the other
shots' rows (and their deliverables) are kept, in report.parquet and report.html alike."""
from __future__ import annotations

from pathlib import Path

from flows.nightly_batch import nightly_batch
from flows.report import read_report
from flows.reprocess import reprocess
from manifests.loader import write_manifest
from tasks.options import RunOptions
from testkit.flows import PLUGIN, tiny_rows


def test_reprocess_replaces_only_the_rerun_shots_rows(batch_env, tiny_shots, tmp_path):
    dirs = tiny_shots(3)
    manifest, out, cache = tmp_path / "m.parquet", tmp_path / "out", tmp_path / "cache"
    rows = tiny_rows(dirs, passes="1")
    rows[2]["plate_uri"] = str(tmp_path / "not-yet.mkv")  # bad row: fails at the manifest
    write_manifest(rows, manifest)
    common = dict(manifest=str(manifest), output_root=str(out), cache=str(cache),
                  plugins=[PLUGIN])

    state = nightly_batch(options=RunOptions(**common), return_state=True)
    assert state.is_failed()
    first = {r["shot_id"]: r for r in read_report(out)}
    assert {s: r["status"] for s, r in first.items()} == {
        dirs[0].name: "ok", dirs[1].name: "ok", dirs[2].name: "failed"}

    # The missing plate arrives; rerun the failed shot only, plus shot 0 by id.
    (tmp_path / "not-yet.mkv").write_bytes((dirs[2] / "plate.mkv").read_bytes())
    state = reprocess(options=RunOptions(failed_from=str(out), shots=[dirs[0].name], **common),
                      return_state=True)
    assert state.is_completed(), state.message
    second = read_report(out)
    assert sorted(r["shot_id"] for r in second) == sorted(d.name for d in dirs)  # no dupes
    by_id = {r["shot_id"]: r for r in second}
    assert {r["status"] for r in second} == {"ok"}
    rerun_id = state.state_details.flow_run_id
    assert by_id[dirs[2].name]["flow_run_id"] == str(rerun_id)
    assert by_id[dirs[2].name]["executed"] == ["decode", "pass1", "encode"]
    assert by_id[dirs[0].name]["flow_run_id"] == str(rerun_id)
    assert by_id[dirs[0].name]["executed"] == []  # from the cache
    kept = by_id[dirs[1].name]  # not rerun: its first-run row, unchanged
    assert kept == first[dirs[1].name]
    assert Path(kept["result_uri"]).is_file()
    html = (out / "report.html").read_text()
    assert all(d.name in html for d in dirs) and "3 of 3 shots ok" in html
