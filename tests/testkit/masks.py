"""Helpers the mask tests import by name (a module of its own: `from conftest import ...`
resolves to whichever conftest pytest loaded last, so shared names do not live there)."""
from __future__ import annotations

import dataclasses

import numpy as np

from void_engine.masks.segment import Sam2Config

TINY_SAM2 = Sam2Config(model_config="configs/sam2.1/sam2.1_hiera_t.yaml", image_size=256,
                       device="cpu", allow_random_weights=True)


def good_answer(clip, grid, frames=None, **overrides) -> dict:
    """What a correct VLM would say about the push clip: the blue box is pushed from the
    contact frame on; its cells on a few frames from the ground truth."""
    frames = frames or [clip.contact, (clip.contact + len(clip.frames)) // 2,
                        len(clip.frames) - 1]
    locs = []
    for f in frames:
        cells = grid.cells_touched(clip.pushed[f])
        locs.append({"frame": int(f), "cells": [{"row": int(r), "col": int(c)}
                                                for r, c in zip(*np.nonzero(cells), strict=False)]})
    obj = {"noun": "blue box", "category": "physical", "effect": "moves",
           "why": "the red box pushes it", "will_move": False,
           "first_appears_frame": int(clip.contact), "confidence": 0.9,
           "grid_localizations": locs}
    obj.update(overrides)
    return {"affected_objects": [obj], "scene_description": "a blue box on a textured floor",
            "confidence": 0.8}


def read_quadmask_frames(uri) -> np.ndarray:
    """All frames of a written mask file, quantized, as (T, H, W)."""
    from void_engine.masks import maskio

    with maskio.opened(uri, "quadmask") as info:
        return np.stack(list(maskio.read_mask(info)))


def decoded_for(tmp_path, video, masks, frame_indices=None):
    """A decoded shot (model space = plate) around a pass-1-like result, for the gate."""
    from void_engine.stages import DecodedShot, ModelSpaceMap

    np.save(tmp_path / "pass1.npy", video)
    np.save(tmp_path / "mask.npy", masks)
    t, h, w = masks.shape
    mapping = ModelSpaceMap(plate_size=(h, w), plate_fps=12.0, first_frame=0, num_frames=t,
                            model_size=(h, w), frame_indices=frame_indices or list(range(t)))
    d = DecodedShot(shot_id="g", plate_uri="plate.mp4", quadmask_uri="q.mp4",
                    clip_path=str(tmp_path / "clip.npy"), mask_path=str(tmp_path / "mask.npy"),
                    mapping=mapping)
    return d, str(tmp_path / "pass1.npy")


# the same tiny random SAM2 at 128 px input: ~4x cheaper per frame, for tests that only need
# SAM2 to run, not a particular (meaningless) mask
FAST_SAM2 = dataclasses.replace(TINY_SAM2, image_size=128)
