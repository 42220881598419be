"""Segmentation prompts (clicks and boxes on plate frames): the one home of their validation.

The manifest validates them without the plate (types, fields, objects that can be segmented:
`manifests.schema.ShotRow` uses these models) and the segmentation stage validates them again
against the plate it reads (frames inside the clip, coordinates inside the picture).

    clicks: [{"frame": int, "x": float, "y": float, "label": 1 (object) | 0 (not object),
              "obj": int = 1}]
    boxes:  [{"frame": int, "box": [x0, y0, x1, y1], "obj": int = 1}]

Plate pixels; frame indices count from the plate's first frame. Objects with different `obj`
ids are segmented separately and merged into one mask.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from void_engine.errors import InputError

# strict: JSON true is not the number 1, "3" is not a coordinate
Number = Annotated[float, Field(strict=True)]
Index = Annotated[int, Field(strict=True, ge=0)]


class Click(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    frame: Index
    x: Number
    y: Number
    label: Index = 1
    obj: Index = 1

    @field_validator("label")
    @classmethod
    def _label(cls, v: int):
        if v not in (0, 1):
            raise ValueError(f"label {v} must be 1 (object) or 0 (not object)")
        return v


class Box(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    frame: Index
    box: tuple[Number, Number, Number, Number]
    obj: Index = 1

    @field_validator("box")
    @classmethod
    def _ordered(cls, b: tuple[float, float, float, float]):
        if b[2] <= b[0] or b[3] <= b[1]:
            raise ValueError(f"box {list(b)} is empty: needs x1 > x0 and y1 > y0")
        return b


def check_objects(clicks: list[Click], boxes: list[Box]) -> None:
    """What makes a prompt set unusable whatever the plate: nothing given, an object with only
    negative clicks (nothing to segment), two boxes for one object on one frame (SAM2 takes
    one box per object and frame). Raises ValueError."""
    if not clicks and not boxes:
        raise ValueError("no clicks or boxes given")
    positive: dict[int, bool] = defaultdict(bool)
    for c in clicks:
        positive[c.obj] |= c.label == 1
    seen: set[tuple[int, int]] = set()
    for b in boxes:
        positive[b.obj] = True
        if (b.frame, b.obj) in seen:
            raise ValueError(f"two boxes for obj {b.obj} on frame {b.frame}; give each object "
                             "its own obj id")
        seen.add((b.frame, b.obj))
    missing = sorted(o for o, ok in positive.items() if not ok)
    if missing:
        raise ValueError(f"obj {missing} has only negative clicks (add a positive click or a "
                         "box)")


class Prompts(BaseModel):
    """A validated prompt set (plate-independent checks included)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    clicks: list[Click] = Field(default_factory=list)
    boxes: list[Box] = Field(default_factory=list)

    @model_validator(mode="after")
    def _usable(self):
        check_objects(self.clicks, self.boxes)
        return self

    def check_plate(self, *, width: int, height: int, num_frames: int) -> None:
        """ValueError naming the first prompt that does not fit the plate."""
        for what, items in (("click", self.clicks), ("box", self.boxes)):
            for i, p in enumerate(items):
                if p.frame >= num_frames:
                    raise ValueError(f"{what} {i}: frame {p.frame} outside 0..{num_frames - 1}")
        for i, c in enumerate(self.clicks):
            if not (0 <= c.x < width and 0 <= c.y < height):
                raise ValueError(f"click {i} at ({c.x:g}, {c.y:g}) is outside the "
                                 f"{width}x{height} plate")
        for i, b in enumerate(self.boxes):
            x0, y0, x1, y1 = b.box
            if not (x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height):
                raise ValueError(f"box {i} {list(b.box)} is outside the {width}x{height} plate")

    def by_frame_object(self) -> dict[tuple[int, int], ObjectPrompts]:
        out: dict[tuple[int, int], ObjectPrompts] = {}
        for c in self.clicks:
            p = out.setdefault((c.frame, c.obj), ObjectPrompts([], []))
            p.points.append((float(c.x), float(c.y)))
            p.labels.append(int(c.label))
        for b in self.boxes:
            out.setdefault((b.frame, b.obj), ObjectPrompts([], [])).box = tuple(map(float, b.box))
        return out


@dataclass
class ObjectPrompts:
    """Prompts of one object on one frame, in plate pixels (what SAM2 is given)."""

    points: list[tuple[float, float]]
    labels: list[int]
    box: tuple[float, float, float, float] | None = None


def one_line(exc: ValidationError) -> str:
    """A pydantic error as one readable line: 'clicks.0.label: Input should be 0 or 1'."""
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"])
        msg = ("unknown field" if e["type"] == "extra_forbidden"
               else e["msg"].removeprefix("Value error, "))
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def parse_prompts(prompts_json: dict, *, width: int, height: int, num_frames: int,
                  shot_id: str | None = None) -> dict[tuple[int, int], ObjectPrompts]:
    """Validate the manifest's prompts against the plate; {(frame, obj): ObjectPrompts}."""
    try:
        prompts = Prompts.model_validate(prompts_json)
        prompts.check_plate(width=width, height=height, num_frames=num_frames)
    except ValidationError as exc:
        raise InputError(f"prompts: {one_line(exc)}", shot=shot_id) from None
    except ValueError as exc:
        raise InputError(f"prompts: {exc}", shot=shot_id) from None
    return prompts.by_frame_object()
