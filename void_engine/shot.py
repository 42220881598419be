"""The records that travel between the per-shot stages (void_engine.stages): what decode_shot
found (DecodedShot, with the ModelSpaceMap to undo the model-space mapping), how to composite
(CompositeParams) and what encode_shot wrote (EncodedShot). JSON-serialisable, so they cross
process boundaries as paths; every file is written to a temporary name, then renamed.

A record owns its folder: the files it names that lie beside its JSON are stored by name,
relative to the JSON, and made absolute again when it is read, so a folder of records can be
moved (a cache entry committed by rename, a download mirror) and read where it lands.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from void_engine.io.atomic import save_npy, write_json

__all__ = ["CompositeParams", "DecodedShot", "EncodedShot", "ModelSpaceMap", "fps_of",
           "save_npy", "write_json"]


@dataclass
class ModelSpaceMap:
    """How model-space frames relate to the plate (enough to undo the mapping)."""

    plate_size: tuple[int, int]  # (height, width) of the plate
    plate_fps: float
    first_frame: int  # first plate frame used (inclusive, 0-based within the plate)
    num_frames: int  # real (unpadded) frames taken from the plate
    model_size: tuple[int, int]  # (height, width) the engine works at
    frame_indices: list[int]  # for each model frame, the index (0..num_frames-1) it shows
    plate_fps_rational: str = ""  # exact plate rate, e.g. "24000/1001" (plate_fps rounds)


@dataclass
class DecodedShot:
    JSON = "decoded.json"  # the record's own file name in its folder (decode_shot's workdir)

    shot_id: str
    plate_uri: str
    quadmask_uri: str
    clip_path: str  # .npy uint8 (T, H, W, 3), model space, padded per the engine's FrameRules
    mask_path: str  # .npy uint8 (T, H, W), quantized quadmask, model space, padded
    mapping: ModelSpaceMap
    mask_histogram: dict[int, int] = field(default_factory=dict)  # at plate resolution
    mask_first_frame: int = 0  # first quadmask frame used (the mask may cover only the range)
    plate_depth: int = 8  # 8/16 (integer) or 32 (float EXR): the dtype plate frames decode to
    # Files beside mask_path (names, so the record survives its folder being moved).
    regions_file: str = ""  # per-frame change boxes + maps at plate size (ChangeRegions)
    matte_file: str = ""  # the quadmask at plate size, lossless, for the shot's frames
    # What was done about side data that shapes the displayed picture (rotation, pixel
    # aspect, variable frame rate), in a few words for the report; "" when nothing was.
    display_note: str = ""

    def beside(self, name: str) -> str:
        """Path of a file decode_shot wrote next to mask_path."""
        return os.path.join(os.path.dirname(self.mask_path), name)

    def to_json(self, path: str | Path) -> str:
        d = _relative(dataclasses.asdict(self), path, ("clip_path", "mask_path"))
        return write_json(path, d)

    @classmethod
    def from_json(cls, path: str | Path) -> DecodedShot:
        d = _absolute(json.loads(Path(path).read_text()), path, ("clip_path", "mask_path"))
        m = d.pop("mapping")
        m["plate_size"] = tuple(m["plate_size"])
        m["model_size"] = tuple(m["model_size"])
        d["mask_histogram"] = {int(k): v for k, v in d.get("mask_histogram", {}).items()}
        return cls(mapping=ModelSpaceMap(**m), **d)


@dataclass(frozen=True)
class CompositeParams:
    """How the model-space result goes back into the plate."""

    dilate_px: int = 8  # grow the change region (at plate resolution) before blending
    feather_px: int = 8  # soft edge width outside the dilated region
    upscale: str = "lanczos"  # cv2 interpolation used to bring the result to plate size


@dataclass
class EncodedShot:
    JSON = "encoded.json"
    FILES = ("result_uri", "matte_uri", "review_movie_uri", "contact_sheet_uri")

    shot_id: str
    result_uri: str
    matte_uri: str  # the quadmask at plate size, lossless
    review_movie_uri: str | None = None
    contact_sheet_uri: str | None = None
    frames: int = 0
    fps: float = 0.0
    size: tuple[int, int] = (0, 0)  # (height, width)
    fps_rational: str = ""  # exact output rate, e.g. "24000/1001" (the average when variable)
    display_note: str = ""  # as DecodedShot.display_note, for what encode_shot wrote
    qc: dict = field(default_factory=dict)  # void_engine.qc figures; {} when not measured

    def to_json(self, path: str | Path) -> str:
        return write_json(path, _relative(dataclasses.asdict(self), path, self.FILES))

    @classmethod
    def from_json(cls, path: str | Path) -> EncodedShot:
        d = _absolute(json.loads(Path(path).read_text()), path, cls.FILES)
        d["size"] = tuple(d["size"])
        return cls(**d)

    def files(self) -> dict[str, str]:
        """The deliverables written: field name -> path."""
        return {k: getattr(self, k) for k in self.FILES if getattr(self, k)}


def _relative(d: dict, json_path: str | Path, keys: tuple[str, ...]) -> dict:
    """Paths in `keys` that lie inside the JSON's folder, as names relative to it."""
    folder = os.path.dirname(os.path.abspath(json_path))
    for k in keys:
        v = d.get(k)
        if v and "://" not in v and os.path.isabs(v):
            rel = os.path.relpath(v, folder)
            if not rel.startswith(".."):
                d[k] = rel
    return d


def _absolute(d: dict, json_path: str | Path, keys: tuple[str, ...]) -> dict:
    folder = os.path.dirname(os.path.abspath(json_path))
    for k in keys:
        v = d.get(k)
        if v and "://" not in v and not os.path.isabs(v):
            d[k] = os.path.join(folder, v)
    return d


def fps_of(m: ModelSpaceMap) -> Fraction:
    """The plate's exact frame rate."""
    if m.plate_fps_rational:
        return Fraction(m.plate_fps_rational)
    return Fraction(m.plate_fps).limit_denominator(100000)
