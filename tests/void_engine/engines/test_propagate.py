"""`propagate` on a synthetic clip with a known clean plate: a textured background under a
camera pan, a solid object crossing it."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from void_engine.engines.base import FrameRules, RemovalParams, available_engines, create_engine
from void_engine.errors import InputError
from void_engine.modelspace import pad_plan
from void_engine.quadmask import AFFECTED, KEEP, from_binary
from void_engine.review import psnr


def synthetic_shot(n=20, h=128, w=224, pan=2, seed=0):
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.uniform(0, 255, (h + 100, w + 100, 3)).astype(np.float32),
                           (0, 0), 2.0)
    tex = np.clip((tex - tex.mean()) * 3 + 128, 0, 255).astype(np.uint8)
    clean = np.stack([tex[30:30 + h, 30 + pan * t:30 + pan * t + w] for t in range(n)])
    clip, masks = clean.copy(), []
    for t in range(n):
        obj = np.zeros((h, w), bool)
        x, y = 20 + 7 * t, 40 + int(10 * np.sin(t / 4))
        obj[y:y + 30, x:x + 30] = True
        clip[t][obj] = (220, 30, 30)
        masks.append(from_binary(cv2.dilate(obj.astype(np.uint8), np.ones((5, 5), np.uint8))))
    return clip, np.stack(masks), clean


def test_propagate_is_registered_and_says_it_is_appearance_only():
    assert "propagate" in available_engines()
    engine = create_engine("propagate")
    assert "appearance-only" in engine.description.lower()
    import void_engine.engines.propagate as mod

    assert "does not model physical interactions" in mod.__doc__


def test_propagate_fills_object_region_from_other_frames():
    clip, masks, clean = synthetic_shot()
    out = create_engine("propagate").remove(clip, masks, "", RemovalParams())
    region = masks != KEEP
    assert psnr(clip, clean, region) < 15  # the object really is there
    assert psnr(out, clean, region) >= 30
    # pixels the engine never touches (outside its slightly dilated hole) are the input's
    far = np.stack([cv2.dilate(r.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
                    for r in region])
    assert np.array_equal(out[far], clip[far])


def test_padded_clip_gives_the_same_frames_as_the_plain_clip():
    clip, masks, _ = synthetic_shot(n=8)
    engine = create_engine("propagate")
    plain = engine.remove(clip, masks, "")
    plan = pad_plan(8, FrameRules(4, True, 13))
    padded = engine.remove(clip[plan], masks[plan], "")
    assert padded.shape[0] == len(plan)
    assert np.array_equal(padded, plain[plan])


def test_affected_region_is_filled_unless_told_not_to():
    # fill_affected is on by default since the engine fills shadows and reflections from the
    # frames where they are clean; False keeps the old behaviour (affected pixels as plate)
    clip, masks, clean = synthetic_shot(n=6)
    masks = masks.copy()
    masks[:, 100:120, 150:200] = AFFECTED
    kept = create_engine("propagate", fill_affected=False).remove(clip, masks, "")
    assert np.array_equal(kept[:, 103:117, 153:197], clip[:, 103:117, 153:197])
    filled = create_engine("propagate").remove(clip, masks, "")
    assert not np.array_equal(filled[:, 103:117, 153:197], clip[:, 103:117, 153:197])


def test_unknown_spatial_fill_is_refused():
    with pytest.raises(InputError, match="spatial"):
        create_engine("propagate", spatial="patchmatch")
