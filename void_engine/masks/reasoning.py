"""Black mask + plate + instruction -> quadmask (0 remove, 63 overlap, 127 affected, 255 keep).

Every result says which path it took (QuadmaskResult.path), why (reason), and whether a later
run could do better (degraded):
- "given":    a grey mask came with the shot; it is combined as is;
- "vlm":      a VLM says which objects the removal affects and where (grid cells, trajectories,
              boxes), turned into grey cells; with SAM2 configured its boxes/points are
              segmented too;
- "grounded": as "vlm", and a grounding detector found the objects it names near the primary
              object; SAM2 masks of those add grey cells (locate.py);
- "fallback": the deterministic contact + motion rule (fallback.py). Not degraded when no VLM
              is configured (it is then the best this setup can do); degraded when a VLM is
              configured but failed (HTTP 429/5xx after bounded retries, timeout, bad JSON,
              schema violations): the next run must ask the VLM again, so such a result must
              never be cached under the real answer's key.
With a VLM answer, its integral belongings (worn/ridden things) found by SAM2 join the black
mask, and its scene description is written as prompt.json ({"bg": ...}, the samples' layout)
beside the quadmask for pass 1. Grey is always grid-aligned (like the reference masks) and
combined through void_engine.quadmask.combine, which also clears grey on the clip's first
frame. The output is streamed at plate resolution and written losslessly; it has the plate's
frame count (frames outside frame_range carry the black mask only).
"""
from __future__ import annotations

import logging
import os
import posixpath
from dataclasses import dataclass, field

import cv2
import numpy as np

from void_engine import io as vio
from void_engine import quadmask
from void_engine.errors import InputError, ModelLoadError
from void_engine.io.atomic import write_json
from void_engine.io.uri import local_path
from void_engine.masks import maskio
from void_engine.masks.fallback import FallbackParams, fallback_cells
from void_engine.masks.grey import answer_cells, object_cells
from void_engine.masks.grid import Grid
from void_engine.masks.locate import locate
from void_engine.masks.segment import work_size
from void_engine.masks.vlm.client import ask, make_backend
from void_engine.masks.vlm.errors import VlmError
from void_engine.masks.vlm.prompt import PROMPT_VERSION, build_request, sample_indices
from void_engine.redact import redact
from void_engine.stages import resolve_range

__all__ = ["PATHS", "PROMPT_VERSION", "QuadmaskResult", "build_quadmask", "quadmask_with"]

log = logging.getLogger(__name__)

ANALYSIS_LONG_SIDE = 512  # fallback motion analysis, grounding and SAM2-from-VLM run at this size
PATHS = ("given", "vlm", "grounded", "fallback")
PROMPT_FILE = "prompt.json"


@dataclass
class QuadmaskResult:
    quadmask_uri: str
    path: str  # one of PATHS
    vlm_model: str | None = None
    details: dict = field(default_factory=dict)
    error: str | None = None  # why the VLM (or grounding) was not used; redacted
    reason: str = ""  # one line: why this path
    degraded: bool = False  # True: a later run could do better; never cache as the answer
    prompt_uri: str | None = None  # prompt.json written beside the quadmask ({"bg": ...})
    scene_description: str | None = None  # the VLM's description of the scene without it

    def summary(self) -> dict:
        """The facts a report or cache entry keeps (details stay in the stage's own files)."""
        return {"path": self.path, "reason": self.reason, "degraded": self.degraded,
                "vlm_model": self.vlm_model, "error": self.error, "prompt": self.prompt_uri}


def build_quadmask(plate_uri: str, black_mask_uri: str, out_uri: str, *, shot_id: str,
                   instruction: str, sam2=None, grounding=None, **kw) -> QuadmaskResult:
    """The quadmask stage with the process's shared models (masks.models.shared_models):
    sam2 (Sam2Config) segments the VLM's boxes/points and belongings, grounding
    (GroundingConfig, needs sam2) finds the objects it names. Other keywords: see
    quadmask_with."""
    from void_engine.masks.models import shared_models

    return shared_models(sam2=sam2, grounding=grounding).build_quadmask(
        plate_uri, black_mask_uri, out_uri, shot_id=shot_id, instruction=instruction, **kw)


def quadmask_with(models, plate_uri: str, black_mask_uri: str, out_uri: str, *, shot_id: str,
                  instruction: str, grey_mask_uri: str | None = None, vlm=None,
                  frame_range: tuple[int, int] | None = None, min_grid: int = 8,
                  min_confidence: float = 0.3,
                  fallback: FallbackParams = FallbackParams()) -> QuadmaskResult:
    """vlm: None (deterministic fallback), a VlmConfig, or a ready backend (has .complete and
    .config). models: a masks.models.MaskModels. Raises InputError (naming the shot) for bad
    inputs and ModelLoadError for a configured local model that cannot load; VLM trouble
    never raises."""
    try:
        with maskio.opened(plate_uri, "plate") as plate, \
                maskio.opened(black_mask_uri, "black mask") as black:
            _same_shape(plate, black, "black mask")
            first, count = resolve_range(frame_range, plate.frames)
            last = first + count - 1
            grid = Grid.for_size(plate.width, plate.height, min_grid)
            details: dict = {"grid": [grid.rows, grid.cols], "frames": [first, last]}
            if grey_mask_uri is not None:
                with maskio.opened(grey_mask_uri, "grey mask") as grey:
                    _same_shape(plate, grey, "grey mask")
                    greys = (g if first <= t <= last else None for t, g in
                             enumerate(maskio.read_mask(grey, what="grey mask")))
                    details["histogram"] = _write(out_uri, plate, black, first, greys)
                return QuadmaskResult(out_uri, "given", None, details, reason="grey mask given")
            r = _reason(models, plate, black, first, last, grid, instruction, vlm,
                        min_confidence, fallback, details)
            greys = (np.where(grid.rasterize(r.cells[t - first], *plate.size), quadmask.AFFECTED,
                              quadmask.KEEP).astype(np.uint8) if first <= t <= last else None
                     for t in range(plate.frames))
            details["histogram"] = _write(out_uri, plate, black, first, greys, r.belongings)
            details["grey_cells_per_frame"] = r.cells.sum(axis=(1, 2)).tolist()
            result = QuadmaskResult(out_uri, r.path, r.model, details, r.error, r.reason,
                                    r.degraded, scene_description=r.scene)
            if r.scene:
                result.prompt_uri = write_prompt(out_uri, r.scene, details)
            return result
    except InputError as exc:
        raise exc.for_shot(shot_id) from None


@dataclass
class _Reasoned:
    cells: np.ndarray
    path: str
    reason: str
    degraded: bool = False
    model: str | None = None
    error: str | None = None
    belongings: np.ndarray | None = None
    scene: str | None = None


def _reason(models, plate, black, first, last, grid, instruction, vlm, min_confidence,
            fallback, details) -> _Reasoned:
    n = last - first + 1
    cfg = None if vlm is None else (vlm.config if hasattr(vlm, "complete") else vlm)
    side = max(ANALYSIS_LONG_SIDE, cfg.max_side if cfg is not None else 0)
    a_h, a_w = work_size(plate.width, plate.height, ANALYSIS_LONG_SIDE)
    picks = set(sample_indices(n, cfg.frames)) if cfg is not None else set()
    frames, shown = [], {}
    for i, f in enumerate(maskio.vio.read_frames(plate, first=first, count=n, uint8=True,
                                                 size=work_size(plate.width, plate.height,
                                                                side))):
        if i in picks:
            shown[i] = f
        frames.append(cv2.resize(f, (a_w, a_h), interpolation=cv2.INTER_AREA)
                      if f.shape[:2] != (a_h, a_w) else f)
    frames = np.stack(frames)
    obj = np.stack([quadmask.remove_region(m) for m in maskio.read_mask(
        black, first=first, count=n, size=(a_h, a_w), what="black mask")])
    if not obj.any():
        raise InputError("black mask is empty: no object pixel in the frame range")
    if cfg is None:
        return _fallback(frames, obj, grid, fallback, details, "no VLM configured")
    try:
        answer, cells = _ask_vlm(vlm, cfg, shown, obj, grid, instruction, n, min_confidence,
                                 details)
    except _VlmFailed as exc:
        log.warning("VLM %s not used (%s); deterministic fallback", cfg.model, exc.error)
        r = _fallback(frames, obj, grid, fallback, details, f"VLM failed: {exc.error}")
        r.model, r.error, r.degraded = cfg.model, exc.error, True
        return r
    r = _Reasoned(cells, "vlm", f"VLM {cfg.model} answered", model=cfg.model,
                  scene=answer.scene_description.strip() or None)
    _refine(models, r, frames, obj, answer, grid, min_confidence, details)
    return r


class _VlmFailed(Exception):
    def __init__(self, error: str):
        super().__init__(error)
        self.error = error


def _ask_vlm(vlm, cfg, shown, obj, grid, instruction, n, min_confidence, details):
    try:
        backend = vlm if hasattr(vlm, "complete") else make_backend(vlm)
        blacks = {i: np.where(obj[i], 0, 255).astype(np.uint8) for i in shown}
        request = build_request(shown, blacks, instruction=instruction, grid=grid,
                                num_frames=n, max_side=cfg.max_side)
        res = ask(backend, request)
    except VlmError as exc:
        raise _VlmFailed(str(exc)) from None
    except ValueError as exc:  # misconfiguration: no base_url, no key, no google-genai
        raise _VlmFailed(redact(f"config: {exc}")) from None
    except Exception as exc:  # noqa: BLE001 - a VLM must never take the batch down
        log.exception("VLM path failed unexpectedly")
        raise _VlmFailed(redact(f"backend_error: {type(exc).__name__}: {str(exc)[:160]}")
                         ) from None
    cells, used = answer_cells(res.answer, grid, n, min_confidence)
    details["vlm"] = {"config": cfg.public(), "prompt_version": PROMPT_VERSION,
                      "cache_key": res.cache_key, "cached": res.cached,
                      "attempts": res.attempts, "retried_errors": res.errors,
                      "answer": res.answer.summary(), **used}
    return res.answer, cells


def _refine(models, r: _Reasoned, frames, obj, answer, grid, min_confidence, details) -> None:
    """Grounding + SAM2 on what the VLM named (when configured): more grey cells, belongings
    into the black mask, and the path/reason that says what happened."""
    if not models.has_sam2:
        if answer.integral_belongings:
            details["belongings"] = "not merged: no SAM2 configured"
        r.reason += "; no SAM2 or grounding model configured"
        return
    detector_cfg = models.grounding_config
    try:
        found = locate(frames, obj, answer, grid, get_predictor=models.sam2,
                       get_detector=models.detector if detector_cfg else None,
                       min_confidence=min_confidence,
                       detect_frames=detector_cfg.detect_frames if detector_cfg else 0,
                       cells_of=lambda o: object_cells(o, grid, len(obj)))
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - the VLM's own cells still stand
        log.exception("grounding/SAM2 on the VLM's objects failed")
        r.error = redact(f"grounding failed: {type(exc).__name__}: {str(exc)[:160]}")
        r.reason += f"; {r.error}"
        r.degraded = True
        return
    details["locate"] = found.details
    details["vlm"]["sam2_cells"] = int((found.cells & ~r.cells).sum())
    r.cells |= found.cells
    r.belongings = found.belongings
    if found.grounded:
        r.path = "grounded"
        r.reason += f"; grounded: {', '.join(found.grounded)}"
    elif detector_cfg is None:
        r.reason += "; no grounding model configured"
    else:
        asked = found.details["queries"]
        r.reason += (f"; grounding found none of: {', '.join(asked)} (VLM cells used)" if asked
                     else "; nothing to ground (no physical object named)")


def _fallback(frames, obj, grid, params, details, reason: str) -> _Reasoned:
    cells, details["fallback"] = fallback_cells(frames, obj, grid, params)
    return _Reasoned(cells, "fallback", reason)


def write_prompt(out_uri: str, scene: str, details: dict) -> str | None:
    """prompt.json ({"bg": scene}) beside the quadmask. An existing prompt.json is the user's
    and is kept (then None)."""
    uri = posixpath.join(posixpath.dirname(str(out_uri)), PROMPT_FILE)
    if vio.is_local(uri) and os.path.exists(local_path(uri)):
        details["prompt"] = f"kept the existing {PROMPT_FILE}"
        return None
    write_json(uri, {"bg": scene}, what=PROMPT_FILE, ensure_ascii=False)
    return uri


def _write(out_uri, plate, black, first, greys, belongings=None) -> dict[int, int]:
    """Stream black (+ belongings) + grey (one per plate frame, None outside the range) ->
    quadmask at plate size; returns the value histogram. Frame 0 of the range is the clip's
    first frame."""
    hist = dict.fromkeys(quadmask.VALUES, 0)

    def frames():
        for t, (b, g) in enumerate(zip(maskio.read_mask(black, what="black mask"), greys,
                                       strict=True)):
            k = t - first
            if belongings is not None and 0 <= k < len(belongings):
                # logits upscaled (not the binary mask) so edges follow the object
                up = cv2.resize(belongings[k].astype(np.float32), (plate.width, plate.height),
                                interpolation=cv2.INTER_LINEAR) > 0
                b = np.where(up, quadmask.REMOVE, b).astype(np.uint8)
            q = quadmask.combine(b, g, frame_index=k)
            for v, c in quadmask.histogram(q).items():
                hist[v] += c
            yield q

    maskio.write_mask(out_uri, frames(), fps=plate.fps, size=plate.size)
    return hist


def _same_shape(plate, other, what: str) -> None:
    if (other.width, other.height) != (plate.width, plate.height):
        raise InputError(f"{what} is {other.width}x{other.height} but the plate is "
                         f"{plate.width}x{plate.height}")
    if other.frames != plate.frames:
        raise InputError(f"{what} has {other.frames} frames but the plate has {plate.frames}")
