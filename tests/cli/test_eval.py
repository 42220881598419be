"""`void-batch eval` end to end on a tiny generated set: `propagate` scores sane figures, a
broken engine scores clearly worse, results made elsewhere can be scored, errors are rows."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pandas as pd
import pytest

from void_batch.cli import main
from void_engine import io
from void_engine import quadmask as qm
from void_engine.engines.base import Engine, register_engine
from void_engine.eval.generator import TRUTH

SIZE = "224x128"  # WxH: the clips are generated at the engine's working size (see below)


@register_engine("plate-unchanged")
class PlateUnchanged(Engine):
    """A deliberately broken engine: gives the plate back untouched."""

    name = "plate-unchanged"

    def pass1(self, clip, quadmask, prompt, params, progress=None):
        return clip.copy()


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    clips = root / "set"
    assert main(["eval", "generate", str(clips), "--clips", "3", "--frames", "8",
                 "--seed", "5", "--sizes", SIZE]) == 0
    out = root / "out"
    for engine in ("propagate", "plate-unchanged"):
        assert main(["eval", "run", str(clips), "--engine", engine, "--model-size", SIZE,
                     "--keep-results", "--out", str(out)]) == 0
    return clips, out, pd.read_parquet(out / "eval.parquet")


def test_outputs_hold_one_row_per_engine_and_clip(evaluated):
    _, out, df = evaluated
    assert sorted(df["engine"].unique()) == ["plate-unchanged", "propagate"]
    assert len(df) == 6 and df["error"].isna().all()
    page = (out / "eval.html").read_text()
    assert "plate-unchanged" in page and "clip000" in page
    for prop in ("object_area", "object_motion", "camera_motion"):
        assert cv2.imread(str(out / f"eval_{prop}.png")) is not None


def test_outside_the_regions_the_result_is_the_truth_bit_for_bit(evaluated):
    # Why exact: the plate (libx264rgb crf 0), ground truth (FFV1) and result (FFV1) are
    # lossless, plate == truth outside the quadmask by construction, the engine works at the
    # plate's own size (no resampling round trip) and propagate only writes its holes (the
    # change region grown by hole_dilate_px = 3): everything farther out is the plate's.
    clips, out, df = evaluated
    rows = df[df["engine"] == "propagate"]
    assert (rows["outside_exact"] > 0.97).all()
    for clip in rows["clip"]:
        folder = clips / clip
        result = io.read_frames(io.probe(str(out / "results" / "propagate" / f"{clip}.mkv")))
        truth = io.read_frames(io.probe(str(folder / TRUTH)))
        masks = qm.read_quadmask(str(folder / "quadmask_0.mp4"))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))  # 4 px: 3 + rounding
        for r, t, m in zip(result, truth, masks, strict=True):
            far = cv2.dilate((m != qm.KEEP).astype(np.uint8), kernel) == 0
            assert np.array_equal(r[far], t[far])


def test_the_broken_engine_scores_clearly_worse_inside_the_regions(evaluated):
    _, _, df = evaluated
    by = df.set_index(["engine", "clip"])
    good, bad = by.loc["propagate"], by.loc["plate-unchanged"]
    assert (good["psnr_object"] > bad["psnr_object"] + 3).all()  # dB, per clip
    assert good["ssim_object"].mean() > bad["ssim_object"].mean() + 0.1
    assert good["temporal_excess"].mean() < bad["temporal_excess"].mean()
    # the broken engine never touches the plate, so outside it is the truth exactly
    assert (bad["outside_exact"] == 1.0).all()


def test_score_existing_results_and_missing_ones_become_error_rows(evaluated, tmp_path):
    clips, out, df = evaluated
    results = tmp_path / "results"
    shutil.copytree(out / "results" / "propagate", results)
    first = sorted(df["clip"].unique())[0]
    (results / f"{first}.mkv").unlink()
    assert main(["eval", "score", str(clips), "--results", str(results), "--label", "copied",
                 "--out", str(tmp_path / "ev")]) == 1  # one clip failed
    scored = pd.read_parquet(tmp_path / "ev" / "eval.parquet").set_index("clip")
    assert "no result" in scored.loc[first, "error"]
    ran = df[df["engine"] == "propagate"].set_index("clip")
    for clip in scored.index.drop(first):
        assert scored.loc[clip, "psnr_object"] == ran.loc[clip, "psnr_object"]


def test_bad_set_is_one_line_error(tmp_path, capsys):
    assert main(["eval", "run", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "not a generated set" in capsys.readouterr().err
