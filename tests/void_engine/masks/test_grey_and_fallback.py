"""Grid, VLM answer -> grey cells (interpolation in time, trajectories, boxes), and the
deterministic fallback on the synthetic push clip."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from testkit.synth import push_clip
from void_engine.masks.fallback import fallback_cells
from void_engine.masks.grey import answer_cells, interpolate_keyframes, object_cells
from void_engine.masks.grid import Grid
from void_engine.masks.vlm.schema import AffectedObject, VlmAnswer


@pytest.mark.parametrize("w,h,rows,cols", [(3840, 2160, 8, 14), (1296, 720, 8, 14),
                                           (544, 360, 8, 12), (4096, 2160, 8, 15),
                                           (720, 1280, 14, 8)])
def test_grid_matches_the_reference_sizes(w, h, rows, cols):
    assert Grid.for_size(w, h) == Grid(rows, cols)


def test_cells_are_resolution_independent():
    g = Grid.for_size(3840, 2160)
    cells = np.zeros((8, 14), bool)
    cells[2, 5] = cells[7, 13] = True
    for h, w in ((2160, 3840), (384, 672), (90, 160)):
        assert np.array_equal(g.cells_touched(g.rasterize(cells, h, w)), cells)
    big = g.rasterize(cells, 2160, 3840)
    assert big[2 * 2160 // 8, 5 * 3840 // 14] and big[-1, -1] and not big[0, 0]


def test_keyframe_cells_travel_between_keys():
    a = np.zeros((8, 14), bool)
    a[4, 1] = True
    b = np.zeros((8, 14), bool)
    b[4, 11] = True
    out = interpolate_keyframes({2: a, 12: b}, 15, start=1)
    assert not out[0].any()  # before first_appears_frame
    assert np.array_equal(out[1], a) and np.array_equal(out[14], b)  # held outside the keys
    # halfway both ends have moved to the middle columns, not stayed at 1 and 11
    cols = set(np.nonzero(out[7])[1].tolist())
    assert cols <= {5, 6, 7} and cols
    assert [np.nonzero(out[t])[1].mean() for t in range(2, 13)] == sorted(
        np.nonzero(out[t])[1].mean() for t in range(2, 13))


def test_trajectory_block_moves_linearly():
    o = AffectedObject(noun="ball", category="physical", will_move=True, confidence=0.9,
                       first_appears_frame=0, trajectory_path=[(0, 1, 1), (10, 1, 11)],
                       object_size_grids=(1, 1))
    cells = object_cells(o, Grid(8, 14), 11)
    assert [int(np.nonzero(cells[t])[1][0]) for t in range(11)] == list(range(1, 12))
    assert cells.sum(axis=(1, 2)).tolist() == [1] * 11


def test_boxes_become_cells_and_low_confidence_is_skipped():
    g = Grid(8, 14)
    sure = AffectedObject(noun="shadow", category="visual_artifact", will_move=False,
                          confidence=0.8, boxes=[(3, (0.0, 0.5, 0.25, 0.75))])
    unsure = AffectedObject(noun="cup", category="physical", will_move=False,
                            confidence=0.1, grid_localizations={0: [(0, 0)]})
    cells, details = answer_cells(VlmAnswer([sure, unsure], "", 0.5), g, 6)
    assert cells[5, 4:6, 0:4].all() and cells[5].sum() == 8  # rows 4-5, cols 0-3
    assert not cells[:, 0, 0].any()
    assert details["skipped_low_confidence"] == [{"noun": "cup", "confidence": 0.1}]


def test_fallback_marks_the_pushed_object_after_contact_and_is_deterministic():
    clip = push_clip()
    g = Grid.for_size(clip.frames.shape[2], clip.frames.shape[1])
    cells, details = fallback_cells(clip.frames, clip.pusher, g)
    h, w = clip.pusher.shape[1:]
    for t in range(clip.contact + 1, len(cells)):
        covered = g.rasterize(cells[t], h, w)[clip.pushed[t]].mean()
        assert covered >= 0.9, (t, covered)  # the pushed box lies in grey cells
    assert details["motion_cells"] > 0 and details["contact_cells"] > 0
    # far from the object nothing is grey (top and bottom rows)
    assert not cells[:, 0].any() and not cells[:, -1].any()
    again, _ = fallback_cells(clip.frames, clip.pusher, g)
    assert np.array_equal(cells, again)


def test_fallback_ignores_the_object_own_motion():
    """A lone moving object (nothing to push): grey stays (almost) within the contact ring;
    optical-flow smear may add a stray cell at the frame border, never a trail."""
    clip = push_clip(target=400)  # the blue box is outside the frame
    g = Grid.for_size(clip.frames.shape[2], clip.frames.shape[1])
    cells, details = fallback_cells(clip.frames, clip.pusher, g)
    stray = 0
    for t in range(len(cells)):
        near = cv2.dilate(clip.pusher[t].astype(np.uint8), np.ones((9, 9), np.uint8))
        stray += int((cells[t] & ~g.cells_touched(near)).sum())
    assert stray <= 2 and details["motion_cells"] <= 2
