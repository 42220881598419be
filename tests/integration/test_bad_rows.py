"""A manifest with bad rows: every bad row is reported with its problem, the good rows finish,
and the run (flow state, CLI exit code) is failed only after all of them ran."""
from __future__ import annotations

from pathlib import Path

from manifests.loader import load_manifest, write_manifest
from testkit.flows import PLUGIN, tiny_rows
from void_batch.cli import main as cli


def test_bad_rows_are_reported_and_good_rows_finish(batch_env, tiny_shots, tmp_path, capsys):
    good, other = tiny_shots(2)
    rows = tiny_rows([good, other], passes="1")
    rows[1]["shot_id"] = "good2"
    bad = [
        {**rows[0], "shot_id": "missing", "plate_uri": str(tmp_path / "nope.mkv")},
        {**rows[0]},  # duplicate shot_id of row 0
        {**rows[0], "shot_id": "reversed", "first_frame": 4, "last_frame": 1},
        {**rows[0], "shot_id": "past-end", "first_frame": 2, "last_frame": 500},
        {**rows[0], "shot_id": "strange-engine", "engine": "warp-drive"},
    ]
    manifest, out = tmp_path / "m.parquet", tmp_path / "out"
    write_manifest(rows[:1] + bad[:3] + rows[1:] + bad[3:], manifest)

    m = load_manifest(manifest, engines=["test-twopass", "propagate", "void"])
    messages = "\n".join(str(e) for e in m.errors)
    assert "file not found" in messages and "missing" in messages
    assert "duplicate shot_id" in messages
    assert "bad frame range" in messages
    assert "unknown engine 'warp-drive'" in messages

    code = cli(["run", str(manifest), "--out", str(out), "--cache", str(tmp_path / "cache"),
                "--plugin", PLUGIN])
    assert code == 1
    report = capsys.readouterr().out
    from flows.report import read_report

    by_id: dict[str, list[dict]] = {}
    for r in read_report(out):
        by_id.setdefault(r["shot_id"], []).append(r)
    assert [r["status"] for r in by_id[good.name]] == ["ok", "failed"]  # the duplicate row fails
    assert by_id["good2"][0]["status"] == "ok"
    assert Path(by_id["good2"][0]["result_uri"]).is_file()
    for sid, stage in (("missing", "manifest"), ("reversed", "manifest"),
                       ("strange-engine", "manifest"), ("past-end", "decode")):
        (r,) = by_id[sid]
        assert r["status"] == "failed" and r["failed_stage"] == stage, r
        assert r["error"]
    assert "outside the plate" in by_id["past-end"][0]["error"]
    assert "5 of 7 shots" not in report and "2 of 7 shots ok" in report
