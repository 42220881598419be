"""Clicks and boxes are validated in one place (void_engine.masks.prompts): the manifest row and
the segmentation stage give the same answers, the stage adds the plate's bounds."""
from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from manifests.schema import ShotRow
from void_engine.errors import InputError
from void_engine.masks import prompts, segment
from void_engine.masks.prompts import parse_prompts


def P(**kw):
    return parse_prompts(kw, width=160, height=96, num_frames=12, shot_id="s")


def test_prompts_group_by_frame_and_object():
    p = P(clicks=[{"frame": 3, "x": 10, "y": 20, "label": 1, "obj": 1},
                  {"frame": 3, "x": 30, "y": 20, "label": 0, "obj": 1},
                  {"frame": 7, "x": 50, "y": 50, "label": 1, "obj": 2}],
          boxes=[{"frame": 3, "box": [5, 5, 60, 60], "obj": 1}])
    assert p[(3, 1)].points == [(10.0, 20.0), (30.0, 20.0)] and p[(3, 1)].labels == [1, 0]
    assert p[(3, 1)].box == (5.0, 5.0, 60.0, 60.0) and p[(7, 2)].labels == [1]


@pytest.mark.parametrize("given,needle", [
    ({}, "no clicks or boxes"),
    ({"clicks": [{"frame": 12, "x": 1, "y": 1, "label": 1}]}, "click 0: frame 12 outside 0..11"),
    ({"clicks": [{"frame": 0, "x": 160, "y": 1, "label": 1}]}, "outside the 160x96 plate"),
    ({"boxes": [{"frame": 0, "box": [100, 5, 170, 60]}]}, "box 0 [100.0, 5.0, 170.0, 60.0] is "
                                                         "outside the 160x96 plate"),
    ({"clicks": [{"frame": 0, "x": 1, "y": 1, "label": 2}]}, "label 2 must be 1"),
    ({"clicks": [{"frame": 0, "x": 1, "y": 1, "label": True}]}, "clicks.0.label: Input should "
                                                               "be a valid integer"),
    ({"clicks": [{"frame": 0, "x": "3", "y": 1}]}, "clicks.0.x: Input should be a valid number"),
    ({"clicks": [{"frame": 0, "x": 1, "y": 1, "label": 0}]}, "only negative clicks"),
    ({"boxes": [{"frame": 0, "box": [50, 5, 10, 60]}]}, "is empty: needs x1 > x0"),
    ({"boxes": [{"frame": 0, "box": [1, 1, 9, 9]}, {"frame": 0, "box": [20, 20, 30, 30]}]},
     "two boxes"),
    ({"points": []}, "points: unknown field"),
    ({"clicks": [{"frame": 0, "x": 1, "y": 1, "label": 1, "colour": "red"}]},
     "clicks.0.colour: unknown field"),
    ({"clicks": [{"x": 1, "y": 1}]}, "clicks.0.frame: Field required"),
])
def test_bad_prompts_are_one_line_shot_errors(given, needle):
    with pytest.raises(InputError, match=None) as e:
        P(**given)
    assert str(e.value).startswith("shot s: prompts:") and needle in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("given,needle", [
    ({"clicks": [{"frame": 0, "x": 1, "y": 1, "label": 0}]}, "only negative clicks"),
    ({"boxes": [{"frame": 0, "box": [1, 1, 9, 9]}, {"frame": 0, "box": [20, 20, 30, 30]}]},
     "two boxes"),
    ({"clicks": [{"frame": 0, "x": 1, "y": 1, "label": 2}]}, "label 2 must be 1"),
    ({"boxes": [{"frame": 0, "box": [50, 5, 10, 60]}]}, "needs x1 > x0"),
])
def test_the_manifest_row_rejects_what_the_stage_would(given, needle):
    """Plate-independent problems fail at manifest validation, with the stage's own words."""
    row = {k: json.dumps(v) for k, v in given.items()}
    with pytest.raises(ValidationError, match=needle):
        ShotRow(shot_id="s", plate_uri="p.mp4", **row)


def test_one_home():
    """The manifest's click/box models are the stage's (not a second copy)."""
    row = ShotRow(shot_id="s", plate_uri="p.mp4",
                  clicks=json.dumps([{"frame": 0, "x": 5, "y": 6}]))
    assert type(row.clicks[0]) is prompts.Click
    assert segment.parse_prompts is prompts.parse_prompts
    assert P(**row.prompts_json())[(0, 1)].points == [(5.0, 6.0)]
