"""The shot manifest: one Parquet row per shot. The pyarrow schema is what files must look like;
`ShotRow` is one validated row (types, enums, mask inputs, click/box JSON).

Mask inputs, exactly one of:
  quadmask_uri                      the four-value mask is given: no segmentation, no VLM
  black_mask_uri [+ grey_mask_uri]  object mask given; with grey_mask_uri the two are combined,
                                    without it the VLM reasons about the affected region
  clicks / boxes (JSON)             segmentation (SAM2) makes the black mask, then the VLM step

clicks: JSON list of {"frame": int, "x": float, "y": float, "label": 1|0, "obj": int = 1}
boxes:  JSON list of {"frame": int, "box": [x0, y0, x1, y1], "obj": int = 1}
(validated by void_engine.masks.prompts, which the segmentation stage uses too)
Coordinates are plate pixels; frame indices are relative to the plate (not to first_frame).
URIs go through fsspec (local paths, file://, s3://, gs://); relative ones are resolved against
the manifest's folder by the loader.
"""
from __future__ import annotations

import json
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from void_engine.io import ALL_CODECS as CODECS  # h264, prores, ffv1, png, exr
from void_engine.masks.prompts import Box, Click, check_objects  # the one home of prompt checks

SCHEMA = pa.schema([
    pa.field("shot_id", pa.string(), nullable=False),
    pa.field("plate_uri", pa.string(), nullable=False),
    pa.field("first_frame", pa.int32()),   # inclusive, 0-based plate frame; null = 0
    pa.field("last_frame", pa.int32()),    # inclusive; null = last plate frame
    pa.field("fps", pa.float64()),         # override of the plate's frame rate
    pa.field("quadmask_uri", pa.string()),
    pa.field("black_mask_uri", pa.string()),
    pa.field("grey_mask_uri", pa.string()),
    pa.field("clicks", pa.string()),       # JSON, see module doc
    pa.field("boxes", pa.string()),        # JSON, see module doc
    pa.field("prompt", pa.string()),       # the scene after removal
    pa.field("instruction", pa.string()),  # what to remove, for the VLM
    pa.field("passes", pa.string()),       # "1" | "2" | "auto"
    pa.field("engine", pa.string()),       # null = the run's default engine
    pa.field("seed", pa.int64()),
    pa.field("steps", pa.int32()),
    pa.field("pass2_steps", pa.int32()),
    pa.field("guidance_scale", pa.float64()),
    pa.field("output_uri", pa.string()),   # null = <output_root>/<shot_id>
    pa.field("codec", pa.string()),
    pa.field("priority", pa.int32()),      # higher runs first
    pa.field("tags", pa.list_(pa.string())),
])

REQUIRED = ("shot_id", "plate_uri")
SHOT_ID_MAX = 128



class ShotRow(BaseModel):
    """One validated manifest row. URIs are as written; the loader resolves relative ones."""

    model_config = ConfigDict(extra="ignore")

    # Names files and folders (<shot_id>_review.mp4, temp names): kept well inside the 255-byte
    # file-name limit of common file systems. Text only: an integer id column is refused here,
    # not half-way through a run.
    shot_id: str = Field(min_length=1, max_length=SHOT_ID_MAX, strict=True,
                         pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    plate_uri: str = Field(min_length=1)
    first_frame: int | None = Field(default=None, ge=0)
    last_frame: int | None = Field(default=None, ge=0)
    fps: float | None = Field(default=None, gt=0)
    quadmask_uri: str | None = None
    black_mask_uri: str | None = None
    grey_mask_uri: str | None = None
    clicks: list[Click] = Field(default_factory=list)
    boxes: list[Box] = Field(default_factory=list)
    prompt: str = ""
    instruction: str | None = None
    passes: Literal["1", "2", "auto"] = "auto"
    engine: str | None = None
    seed: int = 42
    steps: int | None = Field(default=None, ge=1)
    pass2_steps: int | None = Field(default=None, ge=1)
    guidance_scale: float | None = None
    output_uri: str | None = None
    codec: str = "ffv1"
    priority: int = 0
    tags: list[str] = Field(default_factory=list)

    @field_validator("clicks", "boxes", mode="before")
    @classmethod
    def _parse_json(cls, v):
        if v is None or v == "":
            return []
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc.msg})") from None
        if not isinstance(v, list):
            raise ValueError("must be a JSON list")
        return v

    @field_validator("passes", mode="before")
    @classmethod
    def _passes(cls, v):
        return "auto" if v is None or v == "" else str(v)

    @field_validator("prompt", "codec", mode="before")
    @classmethod
    def _none_to_default(cls, v, info):
        if v is None:
            return "ffv1" if info.field_name == "codec" else ""
        return v

    @field_validator("seed", "priority", mode="before")
    @classmethod
    def _none_int(cls, v, info):
        return (42 if info.field_name == "seed" else 0) if v is None else v

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, v):
        return [] if v is None else list(v)

    @field_validator("codec")
    @classmethod
    def _codec(cls, v: str):
        if v not in CODECS:
            raise ValueError(f"unknown codec {v!r} (one of {', '.join(CODECS)})")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if (self.first_frame is not None and self.last_frame is not None
                and self.last_frame < self.first_frame):
            raise ValueError(f"bad frame range: last_frame {self.last_frame} < first_frame "
                             f"{self.first_frame}")
        given = [name for name, present in (
            ("quadmask_uri", self.quadmask_uri), ("black_mask_uri", self.black_mask_uri),
            ("clicks/boxes", self.clicks or self.boxes)) if present]
        if not given:
            raise ValueError("no mask input: give quadmask_uri, black_mask_uri (+ grey_mask_uri)"
                             " or clicks/boxes")
        if len(given) > 1:
            raise ValueError(f"conflicting mask inputs: {' and '.join(given)} (give exactly one)")
        if self.grey_mask_uri and not self.black_mask_uri:
            raise ValueError("grey_mask_uri needs black_mask_uri")
        if self.clicks or self.boxes:
            check_objects(self.clicks, self.boxes)
        return self

    @property
    def mask_mode(self) -> str:
        """'quadmask' | 'black+grey' | 'black' | 'prompts' — which mask stages the shot needs."""
        if self.quadmask_uri:
            return "quadmask"
        if self.black_mask_uri:
            return "black+grey" if self.grey_mask_uri else "black"
        return "prompts"

    @property
    def frame_range(self) -> tuple[int, int | None] | None:
        """(first, last) inclusive; last None = to the end of the plate; None = whole plate."""
        if self.first_frame is None and self.last_frame is None:
            return None
        return (self.first_frame or 0, self.last_frame)

    def prompts_json(self) -> dict:
        """The segmentation prompts as the masks stage takes them."""
        return {"clicks": [c.model_dump() for c in self.clicks],
                "boxes": [b.model_dump() for b in self.boxes]}

    def uri_fields(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in ("plate_uri", "quadmask_uri", "black_mask_uri",
                                               "grey_mask_uri") if getattr(self, k)}


def row_to_record(row: ShotRow) -> dict:
    """A ShotRow back to a Parquet record (clicks/boxes as JSON strings)."""
    d = row.model_dump()
    d["clicks"] = json.dumps(d["clicks"]) if row.clicks else None
    d["boxes"] = (json.dumps([{**b, "box": list(b["box"])} for b in d["boxes"]]) if row.boxes
                  else None)
    return {f.name: d.get(f.name) for f in SCHEMA}
