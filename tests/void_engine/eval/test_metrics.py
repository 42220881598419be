"""Region PSNR/SSIM and temporal consistency on inputs whose answer is known."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from void_engine import quadmask as qm
from void_engine.eval.metrics import ClipScore, psnr_from_mse, score_frames, ssim_map


def textured(h=96, w=128, seed=0):
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 3 - 255, 10, 245).astype(np.uint8)


def mask_with(obj_box, aff_box, shape=(96, 128)):
    m = np.full(shape, qm.KEEP, np.uint8)
    y0, y1, x0, x1 = aff_box
    m[y0:y1, x0:x1] = qm.AFFECTED
    y0, y1, x0, x1 = obj_box
    m[y0:y1, x0:x1] = qm.REMOVE
    return m


def test_psnr_per_region_from_a_known_error():
    truth = textured()
    mask = mask_with((20, 40, 20, 40), (60, 80, 60, 100))
    result = truth.astype(np.int16)
    result[20:40, 20:40] += 5  # every object pixel off by exactly 5 levels
    result[60:80, 60:100] -= 10
    s = score_frames([result.astype(np.uint8)] * 3, [truth] * 3, [mask] * 3)
    # integer errors: the MSE is exactly 25 and 100, so the PSNR is exact up to float64
    assert s["psnr_object"] == pytest.approx(20 * math.log10(255 / 5), abs=1e-9)
    assert s["psnr_affected"] == pytest.approx(20 * math.log10(255 / 10), abs=1e-9)
    assert s["psnr_outside"] == math.inf and s["outside_exact"] == 1.0
    assert s["pixels_object"] == 3 * 400 and s["frames"] == 3


def test_overlap_counts_in_both_regions_and_empty_regions_are_nan():
    truth = textured()
    mask = np.full(truth.shape[:2], qm.KEEP, np.uint8)
    mask[10:20, 10:20] = qm.OVERLAP
    s = score_frames([truth], [truth], [mask])
    assert s["pixels_object"] == s["pixels_affected"] == 100
    mask[10:20, 10:20] = qm.REMOVE
    s = score_frames([truth], [truth], [mask])
    assert math.isnan(s["psnr_affected"]) and math.isnan(s["ssim_affected"])
    assert psnr_from_mse(0.0) == math.inf and math.isnan(psnr_from_mse(math.nan))


def test_ssim_is_one_for_identical_images_and_drops_with_structure_lost():
    a = textured()
    assert ssim_map(a, a).min() == pytest.approx(1.0, abs=1e-12)
    blurred = cv2.GaussianBlur(a, (0, 0), 3)
    mask = mask_with((30, 60, 40, 80), (0, 0, 0, 0))
    result = a.copy()
    result[30:60, 40:80] = blurred[30:60, 40:80]
    s = score_frames([result], [a], [mask])
    assert s["ssim_object"] < 0.7
    # outside keeps ~1 (only a window's reach from the object sees the blur)
    assert s["ssim_outside"] > 0.97 and s["outside_exact"] == 1.0


def test_outside_changes_are_found_far_from_the_change_region():
    truth = textured()
    mask = mask_with((10, 20, 10, 20), (0, 0, 0, 0))
    result = truth.copy()
    result[80:90, 100:120] = 0  # damage far from the object (outside the SSIM crop)
    s = score_frames([result], [truth], [mask])
    assert s["outside_exact"] == pytest.approx(1 - 200 / (96 * 128 - 100))
    assert s["ssim_outside"] < 1 - 1e-3 and s["psnr_outside"] < 40


def test_temporal_excess_of_a_flickering_fill():
    # static truth (flow 0): the truth's own warp error is 0, and a fill that alternates
    # +-4 levels changes by 8 levels (grey, equal on all channels) every frame
    truth = textured()
    mask = mask_with((30, 60, 40, 80), (0, 0, 0, 0))
    results = []
    for t in range(5):
        r = truth.astype(np.int16)
        r[30:60, 40:80] += 4 if t % 2 else -4
        results.append(r.astype(np.uint8))
    s = score_frames(results, [truth] * 5, [mask] * 5)
    assert s["temporal_error_truth"] == 0.0
    assert s["temporal_excess"] == pytest.approx(8.0, abs=0.05)  # grey conversion rounding
    steady = score_frames([truth] * 5, [truth] * 5, [mask] * 5)
    assert steady["temporal_excess"] == 0.0


def test_mismatched_sizes_are_refused():
    with pytest.raises(ValueError, match="differ in size"):
        ClipScore().add(textured(), textured(64, 64), np.full((96, 128), 255, np.uint8))
