"""The gate's default threshold, as calibrated (docs/quality.md), on fresh generated clips at
the model size: the ideal pass 1 and propagate's fills pass, clearly morphing objects go to
pass 2."""
from __future__ import annotations

import numpy as np
import pytest

from void_engine.config import DEFAULT_MODEL_SIZE
from void_engine.engines.base import RemovalParams, create_engine
from void_engine.eval.gate_calibration import synthesized_object
from void_engine.eval.generator import sample_spec
from void_engine.eval.scene import Scene
from void_engine.masks.gate import DEFAULT_THRESHOLD, real_pairs, warp_error_score


@pytest.mark.parametrize("index", [0, 1])  # a still camera, a pan
def test_default_threshold_on_generated_pass1_results(index):
    frames = 8
    s = Scene(sample_spec(11, index, DEFAULT_MODEL_SIZE, frames))
    clip, truth, masks = map(np.stack, zip(*[s.frame(t) for t in range(frames)], strict=True))
    pairs = real_pairs([], frames)

    def score(video):
        return warp_error_score(video, masks, pairs)[0]

    fill = create_engine("propagate").pass1(clip, masks, "", RemovalParams())
    assert score(truth) < DEFAULT_THRESHOLD
    assert score(fill) < DEFAULT_THRESHOLD
    assert score(synthesized_object(truth, masks, 0.5, seed=index, contrast=1.5)) > \
        DEFAULT_THRESHOLD
