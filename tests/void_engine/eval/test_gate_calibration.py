"""The morphing gate's calibration: synthesized pass-1 objects score as the gate should see
them (rigid low, morphing high), and the ROC arithmetic is right on known scores."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from void_engine.eval.gate_calibration import roc, synthesized_object
from void_engine.eval.generator import sample_spec
from void_engine.eval.scene import Scene
from void_engine.masks.gate import real_pairs, warp_error_score


@pytest.mark.parametrize("index", [0, 1])  # still camera, pan
def test_morphing_object_scores_above_the_same_object_kept_rigid(index):
    s = Scene(sample_spec(2, index, (128, 224), 10))
    _, truth, masks = map(np.stack, zip(*[s.frame(t) for t in range(10)], strict=True))
    pairs = real_pairs([], 10)
    scores = {a: warp_error_score(synthesized_object(truth, masks, a, seed=3), masks,
                                  pairs)[0] for a in (0.0, 0.3)}
    truth_score, _ = warp_error_score(truth, masks, pairs)
    assert truth_score < scores[0.0] < scores[0.3]
    assert scores[0.3] > 1.3 * scores[0.0]


def test_synthesized_object_stays_in_the_change_region():
    s = Scene(sample_spec(2, 0, (128, 224), 4))
    _, truth, masks = map(np.stack, zip(*[s.frame(t) for t in range(4)], strict=True))
    out = synthesized_object(truth, masks, 0.5, seed=1)
    keep = masks == 255
    assert np.array_equal(out[keep], truth[keep]) and not np.array_equal(out, truth)


def test_roc_on_known_scores():
    df = pd.DataFrame({"needs_pass2": [False, False, False, True, True, True],
                       "score": [1.0, 2.0, 3.5, 3.0, 4.0, 5.0], "kind": ["x"] * 6})
    r = roc(df, current=4.5)
    # 8 of the 9 positive/negative pairs are ordered right (3.0 < 3.5 is not)
    assert r["auc"] == pytest.approx(8 / 9)
    assert r["current_tpr"] == pytest.approx(1 / 3) and r["current_fpr"] == 0.0
    assert r["best_balanced_accuracy"] == pytest.approx(5 / 6)
    assert 2.0 < r["best_threshold"] < 4.0
    separable = pd.DataFrame({"needs_pass2": [False, True], "score": [1.0, 3.0],
                              "kind": ["a", "b"]})
    s = roc(separable, current=10.0)
    assert s["auc"] == 1.0 and s["best_threshold"] == pytest.approx(2.0)
    assert s["current_accuracy"] == 0.5
