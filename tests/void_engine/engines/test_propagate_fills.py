"""`propagate` on generated counterfactual scenes with ground truth: large static occluders
come back as the background seen before they arrived, shadows and reflections are removed."""
from __future__ import annotations

import numpy as np
import pytest

from void_engine import quadmask as qm
from void_engine.engines.base import create_engine
from void_engine.engines.fill import relight
from void_engine.eval.generator import sample_spec
from void_engine.eval.scene import Scene
from void_engine.review import psnr

OLD = {"global_motion": False, "fill_affected": False, "spatial": "telea"}  # before 2026-12


def scene(index, size=(128, 224), frames=12, seed=0):
    s = Scene(sample_spec(seed, index, size, frames))
    clip, truth, masks = map(np.stack, zip(*[s.frame(t) for t in range(frames)],
                                           strict=True))
    return s.spec, clip, truth, masks


def test_large_static_occluder_is_the_background_seen_before_it_arrived():
    # index 3: a static camera; the occluder comes down and stays for the second half
    spec, clip, truth, masks = scene(3)
    assert spec.kind == "occluder" and spec.camera == "static"
    out = create_engine("propagate").remove(clip, masks, "")
    obj = qm.remove_region(masks)
    # a still camera copies the pixel from a frame where it is clean: bit for bit
    assert np.array_equal(out[obj], truth[obj])
    old = create_engine("propagate", **OLD).remove(clip, masks, "")
    assert psnr(old, truth, obj) < 35


def test_shadow_and_reflection_come_from_frames_where_they_are_clean():
    # index 21: a still camera and a fast mover with a shadow and a reflection: every
    # pixel they cover is clean in some other frame, and is copied from there exactly
    spec, clip, truth, masks = scene(21, frames=16)
    assert spec.camera == "static" and spec.shadow and spec.reflection
    aff, obj = masks == qm.AFFECTED, qm.remove_region(masks)
    out = create_engine("propagate").remove(clip, masks, "")
    assert np.array_equal(out[aff], truth[aff]) and np.array_equal(out[obj], truth[obj])
    old = create_engine("propagate", **OLD).remove(clip, masks, "")
    # the old default left them as they were (but for its object hole's 3 px dilation)
    assert psnr(old, truth, aff) < psnr(clip, truth, aff) + 1


def test_shadow_and_reflection_under_a_panning_camera():
    # index 1: a pan; some of the region is never clean (relit), the rest is resampled
    spec, clip, truth, masks = scene(1, frames=24)
    assert spec.camera == "pan" and spec.shadow and spec.reflection
    aff = masks == qm.AFFECTED
    out = create_engine("propagate").remove(clip, masks, "")
    assert psnr(out, truth, aff) > psnr(clip, truth, aff) + 6  # dB over the plate


def test_relight_undoes_a_soft_shadow_it_cannot_see_around():
    rng = np.random.default_rng(0)
    truth = np.clip(rng.normal(128, 30, (64, 96, 3)), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:64, :96]
    shade = 0.5 + 0.5 * np.clip(np.hypot(yy - 32, xx - 48) / 20.0, 0, 1)  # 0.5 at the centre
    plate = np.clip(np.rint(truth * shade[..., None]), 0, 255).astype(np.uint8)
    region = np.hypot(yy - 32, xx - 48) < 20
    out = relight(plate, ~region, region, region)
    assert np.array_equal(out[~region], plate[~region])
    assert psnr(out, truth, region) > psnr(plate, truth, region) + 4  # dB


@pytest.mark.parametrize("index", [0, 2])  # still camera, zoom with a push
def test_outside_the_holes_the_clip_is_untouched(index):
    _, clip, _, masks = scene(index, frames=8)
    out = create_engine("propagate").remove(clip, masks, "")
    far = np.stack([qm.change_region(m) for m in masks])
    import cv2

    k = np.ones((7, 7), np.uint8)  # hole_dilate_px = 3
    far = np.stack([cv2.dilate(f.astype(np.uint8), k) == 0 for f in far])
    assert np.array_equal(out[far], clip[far])
