"""Manifest schema, loader and `void-batch manifest` commands (no Prefect, no Ray)."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests.loader import load_manifest, resolve_uri, rows_from_folder, write_manifest
from manifests.schema import SCHEMA, ShotRow
from void_batch.cli import main as cli
from void_engine.errors import InputError

ENGINES = ["propagate", "void"]


def _files(tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "p.mp4").write_bytes(b"plate")
    (tmp_path / "q.mp4").write_bytes(b"mask")
    return "p.mp4", "q.mp4"


def test_every_row_error_is_reported_and_good_rows_kept(tmp_path):
    plate, mask = _files(tmp_path)
    ok = {"shot_id": "a", "plate_uri": plate, "quadmask_uri": mask}
    rows = [ok,
            {**ok, "shot_id": "a"},                                     # duplicate
            {**ok, "shot_id": "b", "plate_uri": "gone.mp4"},            # missing file
            {**ok, "shot_id": "c", "first_frame": 9, "last_frame": 3},  # bad range
            {**ok, "shot_id": "d", "engine": "nope"},                   # unknown engine
            {**ok, "shot_id": "e", "passes": "3"},                      # bad enum
            {"shot_id": "f", "plate_uri": plate},                       # no mask input
            {**ok, "shot_id": "g", "black_mask_uri": mask},             # two mask inputs
            {**ok, "shot_id": "h", "quadmask_uri": None, "clicks": "[{\"frame\": 0}]"},
            {**ok, "shot_id": "bad id!"},
            {**ok, "shot_id": "k", "codec": "gif"}]
    write_manifest(rows, tmp_path / "m.parquet")
    m = load_manifest(tmp_path / "m.parquet", engines=ENGINES)
    assert [s.shot_id for s in m.shots] == ["a"]
    assert m.shots[0].plate_uri == str(tmp_path / "p.mp4")  # resolved against the folder
    errs: dict[int, str] = {}
    for e in m.errors:
        errs[e.row] = errs.get(e.row, "") + str(e) + "\n"
    assert sorted(errs) == list(range(1, len(rows)))
    assert "duplicate shot_id 'a'" in errs[1]
    assert "file not found" in errs[2] and "gone.mp4" in errs[2]
    assert "bad frame range" in errs[3]
    assert "unknown engine 'nope'" in errs[4]
    assert "passes" in errs[5]
    assert "no mask input" in errs[6]
    assert "conflicting mask inputs" in errs[7]
    assert "clicks.0.x" in errs[8] and "clicks.0.y" in errs[8]
    assert "shot_id" in errs[9]
    assert "unknown codec 'gif'" in errs[10]


def test_clicks_and_boxes_json(tmp_path):
    row = ShotRow(shot_id="s", plate_uri="p.mp4", instruction="remove the duck",
                  clicks=json.dumps([{"frame": 3, "x": 10.5, "y": 4, "label": 0, "obj": 2}]),
                  boxes=json.dumps([{"frame": 0, "box": [1, 2, 30, 40], "obj": 2}]))
    assert row.mask_mode == "prompts"
    assert row.prompts_json() == {
        "clicks": [{"frame": 3, "x": 10.5, "y": 4.0, "label": 0, "obj": 2}],
        "boxes": [{"frame": 0, "box": (1.0, 2.0, 30.0, 40.0), "obj": 2}]}
    with pytest.raises(ValueError, match="x1 > x0"):
        ShotRow(shot_id="s", plate_uri="p", boxes=[{"frame": 0, "box": [5, 5, 1, 9]}])
    with pytest.raises(ValueError, match="not valid JSON"):
        ShotRow(shot_id="s", plate_uri="p", clicks="[{")
    # round trip through Parquet keeps them
    write_manifest([row], tmp_path / "m.parquet")
    back = ShotRow.model_validate(pq.read_table(tmp_path / "m.parquet").to_pylist()[0])
    assert back.prompts_json() == row.prompts_json()


def test_uri_resolution():
    assert resolve_uri("a/b.mp4", "/data/m") == "/data/m/a/b.mp4"
    assert resolve_uri("../x.mp4", "/data/m") == "/data/x.mp4"
    assert resolve_uri("/abs/x.mp4", "/data/m") == "/abs/x.mp4"
    assert resolve_uri("s3://bucket/x.mp4", "/data/m") == "s3://bucket/x.mp4"
    assert resolve_uri("plates/x.mp4", "s3://bucket/night") == "s3://bucket/night/plates/x.mp4"
    assert resolve_uri("file:///abs/y.mp4", "/data") == "/abs/y.mp4"


def test_unreadable_or_incomplete_manifest(tmp_path):
    with pytest.raises(InputError, match="manifest not found"):
        load_manifest(tmp_path / "none.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="not a readable Parquet"):
        load_manifest(tmp_path / "junk.parquet")
    pq.write_table(pa.table({"shot_id": ["a"]}), tmp_path / "cols.parquet")
    with pytest.raises(InputError, match="plate_uri"):
        load_manifest(tmp_path / "cols.parquet")


def test_init_from_samples_uses_relative_paths(samples_dir, tmp_path, capsys):
    out = tmp_path / "sub" / "m.parquet"
    assert cli(["manifest", "init", str(samples_dir), "-o", str(out)]) == 0
    table = pq.read_table(out)
    assert table.schema.equals(SCHEMA)
    recs = {r["shot_id"]: r for r in table.to_pylist()}
    assert set(recs) == {"BigBen", "ducky-float", "lime", "moving_ball"}
    assert not Path(recs["BigBen"]["plate_uri"]).is_absolute()
    assert recs["lime"]["quadmask_uri"].endswith("lime/quadmask_0.mp4")
    assert recs["BigBen"]["quadmask_uri"].endswith("BigBen/trimask_quadmask.mp4")
    lime_prompt = json.loads((samples_dir / "lime/prompt.json").read_text())["bg"]
    assert recs["lime"]["prompt"] == lime_prompt
    assert cli(["manifest", "check", str(out)]) == 0
    assert "4 good rows, 0 bad rows" in capsys.readouterr().out


def test_shipped_samples_manifest_resolves():
    repo = Path(__file__).resolve().parents[2]
    shipped = repo / "manifests" / "samples.parquet"
    m = load_manifest(shipped)
    assert m.ok and len(m.shots) == 4
    assert rows_from_folder(repo / "nonexistent-folder-parent" / "..") == []


def test_check_prints_every_error(tmp_path, capsys):
    plate, mask = _files(tmp_path)
    write_manifest([{"shot_id": "a", "plate_uri": plate, "quadmask_uri": mask},
                    {"shot_id": "b", "plate_uri": "x.mp4", "quadmask_uri": "y.mp4"}],
                   tmp_path / "m.parquet")
    assert cli(["manifest", "check", str(tmp_path / "m.parquet")]) == 1
    out = capsys.readouterr().out
    assert "row 1 (shot b): plate_uri: file not found" in out
    assert "row 1 (shot b): quadmask_uri: file not found" in out
    assert "1 good row, 1 bad row (2 errors)" in out
