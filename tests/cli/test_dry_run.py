"""`void-batch run --dry-run`: per shot, which stages would run and which are cached, decided
as the flow decides; nothing runs, no Prefect server or Ray starts."""
from __future__ import annotations

from manifests.loader import write_manifest
from testkit.flows import tiny_rows
from void_batch.cli import main as cli


def test_dry_run_shows_the_plan_and_runs_nothing(tiny_shots, tmp_path, capsys):
    dirs = tiny_shots(2)
    manifest, out, cache = tmp_path / "m.parquet", tmp_path / "out", tmp_path / "cache"
    write_manifest(tiny_rows(dirs, engine="propagate", passes="1"), manifest)
    args = ["run", str(manifest), "--out", str(out), "--cache", str(cache), "--dry-run"]
    assert cli(args) == 0
    text = capsys.readouterr().out
    for d in dirs:
        assert f"{d.name}:" in text
    assert "segmentation  skip (not needed: quadmask mask given)" in text
    assert "decode        run" in text and "pass1         after decode" in text
    assert "gate          skip (engine propagate has no pass 2)" in text
    assert not out.exists() and not cache.exists() or not any((cache).rglob("_entry.json"))

    # With decode's entries in the store, decode reads "cached" and pass 1 is next.
    from manifests.loader import load_manifest
    from tasks.context import StageContext
    from tasks.graph import stage
    from tasks.options import RunOptions
    from tasks.records import Outcome
    from tasks.runner import execute

    options = RunOptions(manifest=str(manifest), output_root=str(out),
                         cache=str(cache)).resolved()
    shot = load_manifest(manifest).shots[0]
    qm = Outcome("vlm_quadmask", "skipped", note="not needed: quadmask given")
    execute(stage("decode"), StageContext(shot, options, {"vlm_quadmask": qm}))
    assert cli(args) == 0
    text = capsys.readouterr().out
    first = text.split(f"{dirs[1].name}:")[0]
    assert "decode        cached" in first and "pass1         run" in first
