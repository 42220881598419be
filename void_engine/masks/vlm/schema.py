"""The VLM's answer: JSON schema (sent to the server for constrained decoding) and strict parsing.

The schema is built per request because its bounds are: grid cells must lie inside the R x C
grid drawn on the frames and frame indices inside the clip. Validation failures become a
VlmError with a specific kind: bad_json, unknown_field, out_of_range, wrong_type, schema.

Coordinates: grid cells are (row, col) of the drawn grid; `boxes`/`points` are normalised to
0..1 of the frame (x right, y down), so they mean the same at any resolution.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import jsonschema

from void_engine.masks.vlm.errors import VlmError

MAX_AFFECTED = 5
MAX_BELONGINGS = 3
CATEGORIES = ("physical", "visual_artifact")
EFFECTS = ("moves", "falls", "deforms", "shadow", "reflection", "other")


def answer_schema(rows: int, cols: int, num_frames: int) -> dict:
    """JSON schema (draft 2020-12) of an answer for a rows x cols grid and num_frames frames."""
    frame = {"type": "integer", "minimum": 0, "maximum": num_frames - 1}
    row = {"type": "integer", "minimum": 0, "maximum": rows - 1}
    col = {"type": "integer", "minimum": 0, "maximum": cols - 1}
    unit = {"type": "number", "minimum": 0, "maximum": 1}

    def obj(props: dict, required: list[str] | None = None) -> dict:
        return {"type": "object", "properties": props, "required": required or list(props),
                "additionalProperties": False}

    cell = obj({"row": row, "col": col})
    boxes = {"type": "array", "items": obj({
        "frame": frame, "box": {"type": "array", "items": unit, "minItems": 4, "maxItems": 4}})}
    affected = obj({
        "noun": {"type": "string", "minLength": 1, "maxLength": 80},
        "category": {"type": "string", "enum": list(CATEGORIES)},
        "effect": {"type": "string", "enum": list(EFFECTS)},
        "why": {"type": "string", "maxLength": 400},
        "will_move": {"type": "boolean"},
        "first_appears_frame": frame,
        "confidence": unit,
        "grid_localizations": {"type": "array", "items": obj({
            "frame": frame, "cells": {"type": "array", "items": cell, "maxItems": rows * cols}})},
        "trajectory_path": {"type": "array", "items": obj({"frame": frame, "row": row,
                                                          "col": col})},
        "object_size_grids": obj({"rows": {"type": "integer", "minimum": 1, "maximum": rows},
                                  "cols": {"type": "integer", "minimum": 1, "maximum": cols}}),
        "boxes": boxes,
        "points": {"type": "array", "items": obj({"frame": frame, "x": unit, "y": unit})},
    }, required=["noun", "category", "will_move", "confidence", "grid_localizations"])
    return obj({
        "affected_objects": {"type": "array", "items": affected, "maxItems": MAX_AFFECTED},
        "integral_belongings": {"type": "array", "maxItems": MAX_BELONGINGS, "items": obj({
            "noun": {"type": "string", "minLength": 1, "maxLength": 80},
            "why": {"type": "string", "maxLength": 400}, "boxes": boxes},
            required=["noun"])},
        "scene_description": {"type": "string", "maxLength": 1000},
        "confidence": unit,
    }, required=["affected_objects", "scene_description", "confidence"])


@dataclass
class AffectedObject:
    noun: str
    category: str
    will_move: bool
    confidence: float
    effect: str = "other"
    why: str = ""
    first_appears_frame: int = 0
    # frame -> list of (row, col)
    grid_localizations: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    trajectory_path: list[tuple[int, int, int]] = field(default_factory=list)  # (frame,row,col)
    object_size_grids: tuple[int, int] | None = None  # (rows, cols)
    boxes: list[tuple[int, tuple[float, float, float, float]]] = field(default_factory=list)
    points: list[tuple[int, float, float]] = field(default_factory=list)


@dataclass
class Belonging:
    """Removed together with the primary object (worn or ridden): joins the black mask."""

    noun: str
    why: str = ""
    boxes: list[tuple[int, tuple[float, float, float, float]]] = field(default_factory=list)


@dataclass
class VlmAnswer:
    affected_objects: list[AffectedObject]
    scene_description: str
    confidence: float
    integral_belongings: list[Belonging] = field(default_factory=list)
    raw: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {"affected": [{"noun": o.noun, "category": o.category, "effect": o.effect,
                              "will_move": o.will_move, "confidence": o.confidence}
                             for o in self.affected_objects],
                "integral_belongings": [b.noun for b in self.integral_belongings],
                "scene_description": self.scene_description, "confidence": self.confidence}


_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.IGNORECASE)


def parse_answer(text: str, *, rows: int, cols: int, num_frames: int) -> VlmAnswer:
    """Parse and strictly validate the model's text. Raises VlmError with a specific kind."""
    if text is None or not str(text).strip():
        raise VlmError("empty_answer", "the model returned no text")
    body = _FENCE.sub("", str(text).strip())
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise VlmError("bad_json", f"answer is not valid JSON ({exc.msg} at line {exc.lineno} "
                                   f"column {exc.colno})") from None
    validate_answer(data, rows=rows, cols=cols, num_frames=num_frames)
    for key in ("affected_objects", "integral_belongings"):
        for i, o in enumerate(data.get(key, [])):
            for j, b in enumerate(o.get("boxes", [])):
                x0, y0, x1, y1 = b["box"]
                if x1 <= x0 or y1 <= y0:
                    raise VlmError("out_of_range", f"box {b['box']} at {key}/{i}/boxes/{j} is "
                                                   "empty (need x0<x1 and y0<y1)")
    return _to_answer(data)


def validate_answer(data: object, *, rows: int, cols: int, num_frames: int) -> None:
    validator = jsonschema.Draft202012Validator(answer_schema(rows, cols, num_frames))
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path),
                                                                list(map(str, e.absolute_path))))
    if not errors:
        return
    raise _classify(errors[0], rows, cols, num_frames)


def _classify(err: jsonschema.ValidationError, rows: int, cols: int,
              num_frames: int) -> VlmError:
    where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        return VlmError("unknown_field", f"unknown field(s) {extra} at {where}")
    if err.validator in ("minimum", "maximum") and err.path and err.path[-1] in (
            "row", "col", "frame", "first_appears_frame"):
        name = err.path[-1]
        bound = {"row": f"0..{rows - 1}", "col": f"0..{cols - 1}"}.get(name, f"0..{num_frames - 1}")
        what = "grid cell" if name in ("row", "col") else "frame"
        return VlmError("out_of_range", f"{what} {name}={err.instance} outside {bound} at {where}")
    if err.validator in ("minimum", "maximum"):
        return VlmError("out_of_range", f"value {err.instance!r} out of range at {where}")
    if err.validator == "type":
        return VlmError("wrong_type", f"{where} should be {err.validator_value}, "
                                      f"got {type(err.instance).__name__} {err.instance!r:.40}")
    if err.validator == "required":
        return VlmError("schema", f"missing field at {where}: {err.message}")
    return VlmError("schema", f"{where}: {err.message[:200]}")


def _to_answer(d: dict) -> VlmAnswer:
    objs = []
    for o in d["affected_objects"]:
        locs: dict[int, list[tuple[int, int]]] = {}
        for loc in o["grid_localizations"]:
            locs.setdefault(loc["frame"], []).extend((c["row"], c["col"]) for c in loc["cells"])
        size = o.get("object_size_grids")
        objs.append(AffectedObject(
            noun=o["noun"].strip().lower(), category=o["category"], will_move=o["will_move"],
            confidence=float(o["confidence"]), effect=o.get("effect", "other"),
            why=o.get("why", ""), first_appears_frame=o.get("first_appears_frame", 0),
            grid_localizations=locs,
            trajectory_path=sorted((p["frame"], p["row"], p["col"])
                                   for p in o.get("trajectory_path", [])),
            object_size_grids=(size["rows"], size["cols"]) if size else None,
            boxes=[(b["frame"], tuple(b["box"])) for b in o.get("boxes", [])],
            points=[(p["frame"], p["x"], p["y"]) for p in o.get("points", [])]))
    return VlmAnswer(affected_objects=objs, scene_description=d["scene_description"],
                     confidence=float(d["confidence"]),
                     integral_belongings=[
                         Belonging(noun=b["noun"].strip().lower(), why=b.get("why", ""),
                                   boxes=[(x["frame"], tuple(x["box"]))
                                          for x in b.get("boxes", [])])
                         for b in d.get("integral_belongings", [])],
                     raw=d)
