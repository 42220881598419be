"""`void-batch manifest check --deep` finds what the run's decode would refuse; `manifest init`
keeps the paths the user gave."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pyarrow.parquet as pq

from manifests.loader import write_manifest
from testkit.flows import tiny_rows, write_shot
from void_batch.cli import main as cli
from void_engine.io import open_writer


def test_deep_check_finds_frame_count_and_value_problems(tmp_path, capsys):
    good = write_shot(tmp_path, "good")
    short = write_shot(tmp_path, "short", frames=4)  # its quadmask is used for a 6-frame plate
    junk = write_shot(tmp_path, "junk")
    with open_writer(str(junk / "quadmask.mkv"), "ffv1", fps=Fraction(24), size=(36, 64),
                     channels=1) as w:
        for t in range(6):
            w.write(np.random.default_rng(t).integers(0, 255, (36, 64), dtype=np.uint8))
    rows = tiny_rows([good, short, junk], engine="propagate")
    rows[1]["plate_uri"] = str(good / "plate.mkv")
    manifest = tmp_path / "m.parquet"
    write_manifest(rows, manifest)
    assert cli(["manifest", "check", str(manifest)]) == 0  # the cheap check sees nothing
    capsys.readouterr()
    assert cli(["manifest", "check", str(manifest), "--deep"]) == 1
    out = capsys.readouterr().out
    assert "row 1 (shot short): quadmask has 4 frames but the plate has 6" in out
    assert "row 2 (shot junk): quadmask frame 0 has values outside" in out
    assert "row 0" not in out and "1 good row, 2 bad rows" in out


def test_init_keeps_symlinked_paths(tmp_path, capsys):
    real = tmp_path / "mnt" / "show"
    write_shot(real, "sh010")
    (real / "sh010" / "input_video.mp4").symlink_to(real / "sh010" / "plate.mkv")
    (real / "sh010" / "quadmask_0.mp4").symlink_to(real / "sh010" / "quadmask.mkv")
    link = tmp_path / "show"
    link.symlink_to(real)
    out = tmp_path / "m.parquet"
    assert cli(["manifest", "init", str(link), "-o", str(out), "--absolute"]) == 0
    (row,) = pq.read_table(out).to_pylist()
    assert row["plate_uri"] == str(link / "sh010" / "input_video.mp4")
