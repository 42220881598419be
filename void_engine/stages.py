"""The per-shot stages as plain functions: files in, files out, typed records between them.

    plate + quadmask --decode_shot--> DecodedShot (model-space clip + mask as .npy, mapping)
                     --run_pass1----> pass1.npy (model space)
                     --run_pass2----> pass2.npy (model space)
                     --encode_shot--> EncodedShot (plate-resolution result, matte, review media)

`void-batch remove` chains them in one process; the Prefect tasks in tasks/ wrap each one with
content-addressed caching, retries and placement (GPU stages on a Ray actor). Records are
JSON-serialisable (`to_json`/`from_json`) so they can cross process boundaries as paths.
Every file written here goes to a temporary name first and is renamed into place.

STATUS: contract only; bodies are filled in by the engine-core work (issue 2).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from void_engine.engines.base import Engine, FrameRules, ProgressFn, RemovalParams


@dataclass
class ModelSpaceMap:
    """How model-space frames relate to the plate (enough to undo the mapping)."""

    plate_size: tuple[int, int]  # (height, width) of the plate
    plate_fps: float
    first_frame: int  # first plate frame used (inclusive, 0-based within the plate)
    num_frames: int  # real (unpadded) frames taken from the plate
    model_size: tuple[int, int]  # (height, width) the engine works at
    frame_indices: list[int]  # for each model frame, the index (0..num_frames-1) it shows


@dataclass
class DecodedShot:
    shot_id: str
    plate_uri: str
    quadmask_uri: str
    clip_path: str  # .npy uint8 (T, H, W, 3), model space, padded per the engine's FrameRules
    mask_path: str  # .npy uint8 (T, H, W), quantized quadmask, model space, padded
    mapping: ModelSpaceMap
    mask_histogram: dict[int, int] = field(default_factory=dict)  # at plate resolution

    def to_json(self, path: str | Path) -> str:
        return _write_json(path, dataclasses.asdict(self))

    @classmethod
    def from_json(cls, path: str | Path) -> "DecodedShot":
        d = json.loads(Path(path).read_text())
        m = d.pop("mapping")
        m["plate_size"] = tuple(m["plate_size"])
        m["model_size"] = tuple(m["model_size"])
        d["mask_histogram"] = {int(k): v for k, v in d.get("mask_histogram", {}).items()}
        return cls(mapping=ModelSpaceMap(**m), **d)


@dataclass
class CompositeParams:
    """How the model-space result goes back into the plate."""

    dilate_px: int = 8  # grow the change region (at plate resolution) before blending
    feather_px: int = 8  # soft edge width outside the dilated region
    upscale: str = "lanczos"  # cv2 interpolation used to bring the result to plate size


@dataclass
class EncodedShot:
    shot_id: str
    result_uri: str
    matte_uri: str  # the quadmask at plate size, lossless
    review_movie_uri: str | None = None
    contact_sheet_uri: str | None = None
    frames: int = 0
    fps: float = 0.0
    size: tuple[int, int] = (0, 0)  # (height, width)

    def to_json(self, path: str | Path) -> str:
        return _write_json(path, dataclasses.asdict(self))

    @classmethod
    def from_json(cls, path: str | Path) -> "EncodedShot":
        d = json.loads(Path(path).read_text())
        d["size"] = tuple(d["size"])
        return cls(**d)


def decode_shot(plate_uri: str, quadmask_uri: str, workdir: str | Path, *, shot_id: str,
                frame_range: tuple[int, int] | None = None,
                model_size: tuple[int, int] = (384, 672),
                frame_rules: FrameRules = FrameRules(),
                fps: float | None = None) -> DecodedShot:
    """Probe + validate plate and quadmask, bring both to model space (streaming decode,
    scaled inside ffmpeg), pad per frame_rules, write clip/mask .npy + decoded.json to workdir.
    frame_range is inclusive (first, last) in plate frames. Raises InputError naming shot_id."""
    raise NotImplementedError


def run_pass1(decoded: DecodedShot, engine: Engine, prompt: str, params: RemovalParams,
              out_path: str | Path, progress: ProgressFn | None = None) -> str:
    """Engine pass 1 on the decoded clip; writes (T, H, W, 3) uint8 .npy; returns its path."""
    raise NotImplementedError


def run_pass2(decoded: DecodedShot, pass1_path: str | Path, engine: Engine, prompt: str,
              params: RemovalParams, out_path: str | Path,
              progress: ProgressFn | None = None) -> str:
    """Engine pass 2 refining the pass-1 result; writes .npy; returns its path."""
    raise NotImplementedError


def encode_shot(decoded: DecodedShot, result_path: str | Path, out_dir: str | Path, *,
                codec: str = "ffv1", composite: CompositeParams = CompositeParams(),
                review: bool = True, progress: ProgressFn | None = None) -> EncodedShot:
    """Drop padding, upscale, composite into the plate (streaming), encode with `codec`,
    write the matte and review media into out_dir."""
    raise NotImplementedError


def _write_json(path: str | Path, payload: dict) -> str:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=list))
    tmp.replace(path)
    return str(path)
