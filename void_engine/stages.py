"""The per-shot stages as plain functions: files in, files out, typed records between them.

    plate + quadmask --decode_shot--> DecodedShot (model-space clip + mask as .npy, mapping)
                     --run_pass1----> pass1.npy (model space)
                     --run_pass2----> pass2.npy (model space)
                     --encode_shot--> EncodedShot (plate-resolution result, matte, review media)

`void-batch remove` chains them in one process; the Prefect tasks in tasks/ wrap each one with
content-addressed caching, retries and placement (GPU stages on a Ray actor). Records are
JSON-serialisable (`to_json`/`from_json`) so they can cross process boundaries as paths.
Every file written here goes to a temporary name first and is renamed into place.

Paths/URIs may be local or fsspec URIs (remote ones go through a temporary local copy).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from void_engine.decode import decode_shot, resolve_range
from void_engine.encode import encode_shot, result_stem
from void_engine.engines.base import Engine, ProgressFn, RemovalParams
from void_engine.errors import OutputError
from void_engine.shot import CompositeParams, DecodedShot, EncodedShot, ModelSpaceMap, save_npy

__all__ = ["CompositeParams", "DecodedShot", "EncodedShot", "ModelSpaceMap", "decode_shot",
           "encode_shot", "resolve_range", "result_stem", "run_pass1", "run_pass2"]


def run_pass1(decoded: DecodedShot, engine: Engine, prompt: str, params: RemovalParams,
              out_path: str | Path, progress: ProgressFn | None = None) -> str:
    """Engine pass 1 on the decoded clip; writes (T, H, W, 3) uint8 .npy; returns its path."""
    clip, mask = _load_model_space(decoded)
    out = engine.pass1(clip, mask, prompt, params, progress)
    return save_npy(out_path, _check_result(out, clip, engine.name, "pass 1"))


def run_pass2(decoded: DecodedShot, pass1_path: str | Path, engine: Engine, prompt: str,
              params: RemovalParams, out_path: str | Path,
              progress: ProgressFn | None = None) -> str:
    """Engine pass 2 refining the pass-1 result; writes .npy; returns its path."""
    clip, mask = _load_model_space(decoded)
    pass1 = np.load(pass1_path)
    _check_result(pass1, clip, engine.name, "pass 1")
    out = engine.pass2(clip, mask, prompt, pass1, params, progress)
    return save_npy(out_path, _check_result(out, clip, engine.name, "pass 2"))


def _load_model_space(decoded: DecodedShot) -> tuple[np.ndarray, np.ndarray]:
    from void_engine.engines.base import check_clip

    clip, mask = np.load(decoded.clip_path), np.load(decoded.mask_path)
    check_clip(clip, mask)
    return clip, mask


def _check_result(out: np.ndarray, clip: np.ndarray, engine: str, what: str) -> np.ndarray:
    out = np.asarray(out)
    if out.shape != clip.shape or out.dtype != np.uint8:
        raise OutputError(f"engine {engine!r} {what} returned {out.dtype} {out.shape}, "
                          f"expected uint8 {clip.shape}")
    return out
