"""Strict validation of VLM answers: every violation has its own error kind and names where."""
from __future__ import annotations

import copy
import json

import pytest

from void_engine.masks.vlm.errors import VlmError
from void_engine.masks.vlm.schema import answer_schema, parse_answer

GOOD = {
    "affected_objects": [{
        "noun": "Ball", "category": "physical", "effect": "falls", "will_move": True,
        "first_appears_frame": 2, "confidence": 0.7,
        "grid_localizations": [{"frame": 2, "cells": [{"row": 1, "col": 3}]},
                               {"frame": 9, "cells": [{"row": 7, "col": 13}]}],
        "trajectory_path": [{"frame": 2, "row": 1, "col": 3}, {"frame": 9, "row": 7, "col": 13}],
        "object_size_grids": {"rows": 2, "cols": 2},
        "boxes": [{"frame": 2, "box": [0.1, 0.1, 0.3, 0.4]}],
        "points": [{"frame": 2, "x": 0.2, "y": 0.2}]}],
    "integral_belongings": [{"noun": "hat", "why": "worn"}],
    "scene_description": "a table", "confidence": 0.9}


def parse(d, rows=8, cols=14, frames=10):
    return parse_answer(d if isinstance(d, str) else json.dumps(d), rows=rows, cols=cols,
                        num_frames=frames)


def kind_of(d, **kw) -> VlmError:
    with pytest.raises(VlmError) as exc:
        parse(d, **kw)
    return exc.value


def test_good_answer_is_parsed_into_typed_objects():
    a = parse(GOOD)
    o = a.affected_objects[0]
    assert o.noun == "ball" and o.will_move is True and o.effect == "falls"
    assert o.grid_localizations == {2: [(1, 3)], 9: [(7, 13)]}
    assert o.trajectory_path == [(2, 1, 3), (9, 7, 13)]
    assert o.object_size_grids == (2, 2) and o.boxes == [(2, (0.1, 0.1, 0.3, 0.4))]
    assert [b.noun for b in a.integral_belongings] == ["hat"] and a.confidence == 0.9


def test_markdown_fence_is_accepted():
    assert parse("```json\n" + json.dumps(GOOD) + "\n```").confidence == 0.9


def test_bad_json():
    e = kind_of('{"affected_objects": [}')
    assert e.kind == "bad_json" and "not valid JSON" in e.message


def test_empty_answer():
    assert kind_of("   ").kind == "empty_answer"


def test_unknown_field_is_named():
    d = copy.deepcopy(GOOD)
    d["affected_objects"][0]["mass_kg"] = 3
    e = kind_of(d)
    assert e.kind == "unknown_field" and "mass_kg" in e.message
    assert "affected_objects/0" in e.message


def test_unknown_top_level_field():
    e = kind_of({**GOOD, "camera": "static"})
    assert e.kind == "unknown_field" and "camera" in e.message


@pytest.mark.parametrize("path,value,needle", [
    (("grid_localizations", 0, "cells", 0, "row"), 8, "row=8 outside 0..7"),
    (("grid_localizations", 1, "cells", 0, "col"), 14, "col=14 outside 0..13"),
    (("grid_localizations", 0, "frame"), 10, "frame=10 outside 0..9"),
    (("trajectory_path", 0, "row"), -1, "row=-1 outside 0..7"),
    (("first_appears_frame",), 99, "frame first_appears_frame=99"),
])
def test_out_of_range_cells_and_frames(path, value, needle):
    d = copy.deepcopy(GOOD)
    target = d["affected_objects"][0]
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    e = kind_of(d)
    assert e.kind == "out_of_range" and needle in e.message


def test_grid_bounds_follow_the_request():
    # the same answer is fine on a bigger grid / longer clip
    d = copy.deepcopy(GOOD)
    d["affected_objects"][0]["grid_localizations"][0]["cells"][0]["row"] = 8
    assert parse(d, rows=9).affected_objects[0].grid_localizations[2] == [(8, 3)]


def test_wrong_types():
    d = copy.deepcopy(GOOD)
    d["affected_objects"][0]["will_move"] = "false"  # the reference would read this as True
    e = kind_of(d)
    assert e.kind == "wrong_type" and "will_move" in e.message
    d = copy.deepcopy(GOOD)
    d["affected_objects"][0]["grid_localizations"][0]["cells"][0]["row"] = "1"
    assert kind_of(d).kind == "wrong_type"


def test_enum_and_missing_fields_are_schema_errors():
    d = copy.deepcopy(GOOD)
    d["affected_objects"][0]["category"] = "emotional"
    assert kind_of(d).kind == "schema"
    d = copy.deepcopy(GOOD)
    del d["affected_objects"][0]["confidence"]
    e = kind_of(d)
    assert e.kind == "schema" and "confidence" in e.message


def test_empty_box_is_out_of_range():
    d = copy.deepcopy(GOOD)
    d["affected_objects"][0]["boxes"][0]["box"] = [0.5, 0.1, 0.2, 0.4]
    assert kind_of(d).kind == "out_of_range"


def test_schema_is_closed_everywhere():
    """Every object in the schema refuses unknown fields (what guided decoding relies on)."""
    def walk(s):
        if isinstance(s, dict):
            if s.get("type") == "object":
                assert s.get("additionalProperties") is False, s
            for v in s.values():
                walk(v)
        elif isinstance(s, list):
            for v in s:
                walk(v)
    walk(answer_schema(8, 14, 10))


def test_belongings_may_carry_boxes_and_empty_ones_are_refused():
    d = copy.deepcopy(GOOD)
    d["integral_belongings"] = [{"noun": " Hat ",
                                 "boxes": [{"frame": 2, "box": [0.1, 0, 0.2, 0.1]}]}]
    b = parse(d).integral_belongings[0]
    assert (b.noun, b.boxes) == ("hat", [(2, (0.1, 0, 0.2, 0.1))])
    d["integral_belongings"][0]["boxes"][0]["box"] = [0.2, 0, 0.1, 0.1]
    e = kind_of(d)
    assert e.kind == "out_of_range" and "integral_belongings/0/boxes/0" in e.message
