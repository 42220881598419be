"""The morphing gate: a measured flow-warp score on the pass-1 result decides pass 2."""
from __future__ import annotations

import numpy as np
import pytest

from testkit.masks import decoded_for
from testkit.synth import gate_clip
from void_engine.masks.gate import DEFAULT_THRESHOLD, morphing_gate, real_pairs


@pytest.mark.parametrize("speed", [2, 6])
def test_rigid_object_scores_below_threshold(tmp_path, speed):
    d, p1 = decoded_for(tmp_path, *gate_clip("rigid", speed=speed))
    r = morphing_gate(d, p1)
    assert r.threshold == DEFAULT_THRESHOLD
    assert 0 < r.score < r.threshold and r.run_pass2 is False
    assert r.details["pairs"] == 11


@pytest.mark.parametrize("kind", ["shape", "morph"])
def test_morphing_object_scores_above_threshold_and_runs_pass2(tmp_path, kind):
    d, p1 = decoded_for(tmp_path, *gate_clip(kind))
    r = morphing_gate(d, p1)
    assert r.score > r.threshold and r.run_pass2 is True


def test_scores_separate_and_threshold_is_configurable(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    rigid = morphing_gate(*decoded_for(tmp_path / "a", *gate_clip("rigid")))
    morph = morphing_gate(*decoded_for(tmp_path / "b", *gate_clip("morph")))
    assert morph.score > 1.5 * rigid.score
    strict = morphing_gate(*decoded_for(tmp_path / "a", *gate_clip("rigid")),
                           threshold=rigid.score / 2)
    assert strict.run_pass2 and strict.threshold == rigid.score / 2


def test_judge_can_add_pass2_but_never_cancel_it(tmp_path):
    d, p1 = decoded_for(tmp_path, *gate_clip("rigid"))
    added = morphing_gate(d, p1, judge=lambda v, m: {"run_pass2": True, "reason": "flicker"})
    assert added.run_pass2 and added.details["decision"] == "judge added pass 2"
    d, p1 = decoded_for(tmp_path, *gate_clip("morph"))
    kept = morphing_gate(d, p1, judge=lambda v, m: {"run_pass2": False})
    assert kept.run_pass2 and kept.details["decision"] == "measured"


def test_empty_change_region_scores_zero(tmp_path):
    video, masks = gate_clip("morph")
    d, p1 = decoded_for(tmp_path, video, np.full_like(masks, 255))
    r = morphing_gate(d, p1)
    assert (r.score, r.run_pass2, r.details["pairs"]) == (0.0, False, 0)


def test_padding_pairs_are_skipped():
    # 5 real frames ping-pong padded to 9: only the 4 forward pairs are real motion
    assert real_pairs([0, 1, 2, 3, 4, 3, 2, 1, 0], 9) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert real_pairs([0, 0, 1, 2], 4) == [(1, 2), (2, 3)]
    assert real_pairs([], 3) == [(0, 1), (1, 2)]
