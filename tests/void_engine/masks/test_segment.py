"""SAM2 segmentation plumbing with the tiny RANDOM-WEIGHT model (its masks mean nothing, so
these tests check shape, frame alignment, losslessness, prompt handling and propagation, not
mask quality)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from testkit.masks import TINY_SAM2
from void_engine import io as vio
from void_engine.errors import InputError, ModelLoadError
from void_engine.masks import maskio, segment
from void_engine.masks.segment import Sam2Config, segment_shot


def test_random_weights_must_be_asked_for_and_checkpoints_must_exist(tmp_path):
    with pytest.raises(ModelLoadError, match="no SAM2 checkpoint"):
        segment.load_predictor(Sam2Config())
    with pytest.raises(ModelLoadError, match="not found"):
        segment.load_predictor(Sam2Config(checkpoint=str(tmp_path / "sam2.1_hiera_large.pt")))


@pytest.fixture(scope="module")
def segmented(push, tmp_path_factory):
    """One tiny-SAM2 run: clicks and a box on frame 5, a second object on frame 7, frame
    range 1-10 of the 12-frame push clip. The propagation record is kept for inspection."""
    runs = []
    real = segment.run_sam2

    def spy(*a, **kw):
        runs.append(real(*a, **kw))
        return runs[-1]

    segment.run_sam2 = spy
    try:
        torch.manual_seed(0)
        out = segment_shot(
            push["plate"],
            {"clicks": [{"frame": 5, "x": 45.0, "y": 48.0, "label": 1, "obj": 1},
                        {"frame": 5, "x": 150.0, "y": 10.0, "label": 0, "obj": 1},
                        {"frame": 7, "x": 80.0, "y": 48.0, "label": 1, "obj": 2}],
             "boxes": [{"frame": 5, "box": [36, 38, 58, 58], "obj": 1}]},
            str(tmp_path_factory.mktemp("seg") / "black.mp4"), shot_id="push",
            frame_range=(1, 10), config=TINY_SAM2,
            progress=lambda done, total: progress.append((done, total)))
    finally:
        segment.run_sam2 = real
    return out, runs[0]


progress: list = []


def test_mask_is_plate_sized_frame_aligned_and_lossless(segmented, push):
    out, _ = segmented
    clip = push["clip"]
    with maskio.opened(out, "black mask") as info:
        assert (info.frames, info.height, info.width) == clip.frames.shape[:3]
        assert info.fps == 12
        raw = np.stack(list(vio.read_video(info.path, channels=1)))
    # exactly two stored levels (lossless: no codec noise between them)
    assert len(np.unique(raw)) <= 2
    q = np.stack(list(maskio.read_mask(maskio.vio.probe(out))))
    assert set(np.unique(q)) <= {0, 255}
    # frames outside the range are background
    assert (q[0] == 255).all() and (q[11] == 255).all()
    assert progress and progress[-1][1] == 10


def test_propagation_goes_backward_too(segmented):
    """Reference bug (stage 1 forward-only): clicks first placed on frame k left frames 0..k-1
    without a mask and shifted the whole mask k frames early. Here every frame of the range
    gets a SAM2 output, including those before the first prompt (range-local 0..3)."""
    _, run = segmented
    assert sorted(run.logits) == list(range(10))
    assert {0, 1, 2, 3} <= set(run.tracked)
    assert run.tracked.index(3) > run.tracked.index(9)  # backward pass after the forward one


def test_prompts_outside_the_range_are_refused(push, tmp_path):
    with pytest.raises(InputError, match=r"shot push: prompts on frame\(s\) \[0\] lie outside"):
        segment_shot(push["plate"], {"clicks": [{"frame": 0, "x": 5, "y": 5, "label": 1}]},
                     str(tmp_path / "b.mp4"), shot_id="push", frame_range=(2, 5),
                     config=TINY_SAM2)
