"""QC figures without ground truth on synthetic frames: a flickering fill scores worse than a
stable one, a hard seam worse than a feathered one, thresholds flag shots."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from void_engine import quadmask as qm
from void_engine.qc import QCAccumulator, QCThresholds


def plate_frames(n=6, h=240, w=320, pan=2, seed=0):
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.uniform(0, 255, (h, w + pan * n, 3)).astype(np.float32),
                           (0, 0), 2.0)
    tex = np.clip((tex - tex.mean()) * 3 + 128, 0, 255).astype(np.uint8)
    return [np.ascontiguousarray(tex[:, pan * t:pan * t + w]) for t in range(n)]


def disc_mask(h=240, w=320, centre=(160, 120), r=50):
    m = np.full((h, w), qm.KEEP, np.uint8)
    cv2.circle(m, centre, r, qm.REMOVE, -1)
    return m


def run(plates, results, masks, **th):
    acc = QCAccumulator(QCThresholds(**th) if th else None)
    for p, r, m in zip(plates, results, masks, strict=True):
        acc.add(p, r, m)
    return acc.figures()


def test_flickering_fill_scores_worse_than_a_stable_one():
    plates = plate_frames()
    mask = disc_mask()
    region = mask != qm.KEEP
    stable, flicker = [], []
    for t, p in enumerate(plates):
        s = p.copy()  # the background itself: what a perfect fill gives
        f = p.astype(np.int16)
        f[region] += 12 if t % 2 else -12
        stable.append(s)
        flicker.append(np.clip(f, 0, 255).astype(np.uint8))
    good = run(plates, stable, [mask] * 6)
    bad = run(plates, flicker, [mask] * 6)
    assert good.measured == 6 and good.frames == 6
    assert good.flicker_ratio < 1.5  # the fill moves with the pan, like the plate
    assert bad.flicker_ratio > 3 * good.flicker_ratio
    assert bad.flicker_plate == pytest.approx(good.flicker_plate)  # same plate, same ring


def test_hard_seam_scores_worse_than_a_feathered_one():
    plates = plate_frames(n=3)
    mask = disc_mask()
    region = (mask != qm.KEEP).astype(np.uint8)
    dist = cv2.distanceTransform(region, cv2.DIST_L2, 5)
    hard = np.where(region > 0, 1.0, 0.0)
    feathered = np.clip(dist / 12.0, 0, 1)  # the offset ramps in over 12 px
    out_hard, out_soft = [], []
    for p in plates:
        out_hard.append(np.clip(p + 60 * hard[..., None], 0, 255).astype(np.uint8))
        out_soft.append(np.clip(p + 60 * feathered[..., None], 0, 255).astype(np.uint8))
    hard_f = run(plates, out_hard, [mask] * 3)
    soft_f = run(plates, out_soft, [mask] * 3)
    clean_f = run(plates, plates, [mask] * 3)
    assert hard_f.seam > 1.3 * soft_f.seam
    assert soft_f.seam > clean_f.seam * 0.9
    assert clean_f.seam == pytest.approx(1.0, abs=0.25)  # texture on both sides of the edge


def test_thresholds_flag_and_say_why():
    plates = plate_frames(n=4)
    mask = disc_mask()
    region = mask != qm.KEEP
    results = []
    for t, p in enumerate(plates):
        f = p.astype(np.int16)
        f[region] = 40 if t % 2 else 200  # flat, flickering grey: both a seam and flicker
        results.append(f.astype(np.uint8))
    figures = run(plates, results, [mask] * 4, flicker_ratio=3.0, seam=2.0)
    assert figures.flagged and len(figures.reasons) == 2
    assert "flicker" in figures.reasons[0] and "seam" in figures.reasons[1]
    relaxed = run(plates, results, [mask] * 4, flicker_ratio=1e9, seam=1e9)
    assert not relaxed.flagged
    row = figures.as_row()
    assert row["qc_flagged"] is True and "seam" in row["qc_reasons"]


def test_frames_without_change_region_and_16bit_plates():
    plates = plate_frames(n=3)
    empty = np.full(plates[0].shape[:2], qm.KEEP, np.uint8)
    figures = run(plates, plates, [empty] * 3)
    assert figures.frames == 3 and figures.measured == 0
    assert math.isnan(figures.seam) and not figures.flagged
    deep = [p.astype(np.uint16) * 257 for p in plates]
    f16 = run(deep, deep, [disc_mask()] * 3)
    f8 = run(plates, plates, [disc_mask()] * 3)
    assert f16.seam == pytest.approx(f8.seam, rel=1e-6)


def test_change_regions_as_encode_shot_holds_them_give_the_same_figures():
    plates = plate_frames(n=4)
    masks = [disc_mask(centre=(120 + 10 * t, 120)) for t in range(4)]
    results = [p.copy() for p in plates]
    for t, r in enumerate(results):
        r[masks[t] != qm.KEEP] = 90 + 20 * t
    by_mask = run(plates, results, masks)
    acc = QCAccumulator()
    for p, r, m in zip(plates, results, masks, strict=True):
        y0, y1, x0, x1 = qm.bounding_box(m)
        acc.add_change(p, r, (y0, y1, x0, x1), m[y0:y1, x0:x1] != qm.KEEP)
    assert acc.figures() == by_mask


@pytest.mark.parametrize("plate_codec", ["ffv1", "h264"])
def test_encoding_without_review_media_measures_qc_on_what_it_encodes(tmp_path, plate_codec):
    """Without review media encode_shot composites inside ffmpeg and QC reads the encoder's
    tap: the figures are those of the whole delivered frames (FFV1: lossless, so they can be
    read back), and agree with the Python compositing path up to its blend rounding."""
    from fractions import Fraction

    from void_engine import io, stages
    from void_engine.modelspace import ChangeRegions

    plates = plate_frames(n=8, h=144, w=240)
    plate = str(tmp_path / f"plate.{'mkv' if plate_codec == 'ffv1' else 'mp4'}")
    with io.open_writer(plate, plate_codec, fps=Fraction(12), size=(144, 240)) as w:
        for f in plates:
            w.write(f)
    masks = [disc_mask(144, 240, centre=(70 + 8 * t, 72), r=24) for t in range(8)]
    masks[3][:] = qm.KEEP  # a frame without change in the middle
    mask = qm.write_quadmask(str(tmp_path / "mask.mkv"), masks, fps=12)
    dec = stages.decode_shot(plate, mask, tmp_path / "work", shot_id="s", model_size=(48, 80))
    tapped = stages.encode_shot(dec, dec.clip_path, tmp_path / "a", codec="ffv1", review=False)
    assert not tapped.review_movie_uri  # the in-encoder path
    acc = QCAccumulator()
    regions = ChangeRegions(dec.beside(dec.regions_file))
    delivered = io.read_frames(io.probe(tapped.result_uri))
    for j, (p, r) in enumerate(zip(io.read_frames(io.probe(plate)), delivered, strict=True)):
        acc.add_change(p, r, *(regions[j] or (None, None)))
    assert tapped.qc == acc.figures().as_row(prefix="")
    assert tapped.qc["frames"] == 8 and tapped.qc["measured"] == 7
    python = stages.encode_shot(dec, dec.clip_path, tmp_path / "b", codec="ffv1")
    assert python.review_movie_uri  # the Python compositing path
    for key in ("flicker_ratio", "seam", "seam_max"):  # blends differ by <= 2 levels
        assert tapped.qc[key] == pytest.approx(python.qc[key], rel=0.02), key

