"""Black mask + plate + instruction -> quadmask (0 remove, 63 overlap, 127 affected, 255 keep).

Three paths, reported per shot as QuadmaskResult.path:
- "given":    a grey mask came with the shot; it is combined as is;
- "vlm":      a VLM says which objects the removal affects and where (grid cells, trajectories,
              boxes; optionally SAM2 masks from its boxes/points), turned into grey cells;
- "fallback": no VLM configured, or the VLM failed (HTTP 429/5xx after bounded retries,
              timeout, bad JSON, schema violations): the deterministic contact + motion rule
              (fallback.py). `error` then says exactly why, and the batch goes on.
Grey is always grid-aligned (like the reference masks) and combined through
void_engine.quadmask.combine, which also clears grey on the clip's first frame. The output is
streamed at plate resolution and written losslessly; it has the plate's frame count (frames
outside frame_range carry the black mask only).
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field

import cv2
import numpy as np

from void_engine import quadmask
from void_engine.errors import InputError
from void_engine.masks import maskio
from void_engine.masks.fallback import FallbackParams, fallback_cells
from void_engine.masks.grey import answer_cells
from void_engine.masks.grid import Grid
from void_engine.masks.segment import ObjectPrompts, Sam2Config, load_predictor, run_sam2, work_size
from void_engine.masks.vlm.client import ask, make_backend
from void_engine.masks.vlm.errors import VlmError
from void_engine.masks.vlm.prompt import PROMPT_VERSION, build_request, sample_indices
from void_engine.stages import resolve_range

__all__ = ["PROMPT_VERSION", "QuadmaskResult", "build_quadmask"]

log = logging.getLogger(__name__)

ANALYSIS_LONG_SIDE = 512  # fallback motion analysis and SAM2-from-VLM run at this size


@dataclass
class QuadmaskResult:
    quadmask_uri: str
    path: str  # "given" | "vlm" | "fallback"
    vlm_model: str | None = None
    details: dict = field(default_factory=dict)
    error: str | None = None  # why the VLM path was not used (None when it was, or not asked)


def build_quadmask(plate_uri: str, black_mask_uri: str, out_uri: str, *, shot_id: str,
                   instruction: str, grey_mask_uri: str | None = None, vlm=None,
                   frame_range: tuple[int, int] | None = None,
                   sam2: Sam2Config | None = None, min_grid: int = 8,
                   min_confidence: float = 0.3,
                   fallback: FallbackParams = FallbackParams()) -> QuadmaskResult:
    """vlm: None (deterministic fallback), a VlmConfig, or a ready backend (has .complete and
    .config). sam2: when given, the VLM's boxes/points are also segmented with SAM2.
    Raises InputError (naming the shot) only for bad inputs; VLM trouble never raises."""
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
                    hist = _write(out_uri, plate, black, first, greys)
                details["histogram"] = hist
                return QuadmaskResult(out_uri, "given", None, details)
            cells, path, model, error = _reason(plate, black, first, last, grid, instruction,
                                                vlm, sam2, min_confidence, fallback, details)
            greys = (np.where(grid.rasterize(cells[t - first], *plate.size), quadmask.AFFECTED,
                              quadmask.KEEP).astype(np.uint8) if first <= t <= last else None
                     for t in range(plate.frames))
            details["histogram"] = _write(out_uri, plate, black, first, greys)
            details["grey_cells_per_frame"] = cells.sum(axis=(1, 2)).tolist()
            return QuadmaskResult(out_uri, path, model, details, error)
    except InputError as exc:
        raise exc.for_shot(shot_id) from None


def _reason(plate, black, first, last, grid, instruction, vlm, sam2, min_confidence,
            fallback, details) -> tuple[np.ndarray, str, str | None, str | None]:
    n = last - first + 1
    cfg = None if vlm is None else (vlm.config if hasattr(vlm, "complete") else vlm)
    vlm_side = cfg.max_side if cfg is not None else 0
    side = max(ANALYSIS_LONG_SIDE, vlm_side)
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
    model = error = None
    if cfg is not None:
        model = cfg.model
        try:
            backend = vlm if hasattr(vlm, "complete") else make_backend(vlm)
            blacks = {i: np.where(obj[i], 0, 255).astype(np.uint8) for i in shown}
            request = build_request(shown, blacks, instruction=instruction, grid=grid,
                                    num_frames=n, max_side=cfg.max_side)
            res = ask(backend, request)
            cells, used = answer_cells(res.answer, grid, n, min_confidence)
            details["vlm"] = {"config": cfg.public(), "prompt_version": PROMPT_VERSION,
                              "cache_key": res.cache_key, "cached": res.cached,
                              "attempts": res.attempts, "retried_errors": res.errors,
                              "answer": res.answer.summary(), **used}
            if sam2 is not None:
                extra = _sam2_cells(sam2, frames, res.answer, grid, min_confidence)
                details["vlm"]["sam2_cells"] = int((extra & ~cells).sum())
                cells |= extra
            return cells, "vlm", model, None
        except VlmError as exc:
            error = str(exc)
        except ValueError as exc:  # misconfiguration: no base_url, no key, no google-genai
            error = f"config: {exc}"
        except Exception as exc:  # noqa: BLE001 - a VLM must never take the batch down
            log.exception("VLM path failed unexpectedly")
            error = f"backend_error: {type(exc).__name__}: {str(exc)[:160]}"
        log.warning("VLM %s not used (%s); deterministic fallback", model, error)
    cells, fdetails = fallback_cells(frames, obj, grid, fallback)
    details["fallback"] = fdetails
    return cells, "fallback", model, error


def _sam2_cells(config: Sam2Config, frames: np.ndarray, answer, grid: Grid,
                min_confidence: float) -> np.ndarray:
    """Cells covered by SAM2 masks of the objects the VLM boxed or pointed at."""
    n, h, w = frames.shape[:3]
    out = np.zeros((n, grid.rows, grid.cols), dtype=bool)
    prompts: dict[tuple[int, int], ObjectPrompts] = {}
    starts: dict[int, int] = {}
    for k, o in enumerate(answer.affected_objects, start=1):
        if o.confidence < min_confidence:
            continue
        for frame, (x0, y0, x1, y1) in o.boxes:
            p = prompts.setdefault((frame, k), ObjectPrompts([], []))
            p.box = (x0 * w, y0 * h, x1 * w, y1 * h)
        for frame, x, y in o.points:
            p = prompts.setdefault((frame, k), ObjectPrompts([], []))
            p.points.append((x * w, y * h))
            p.labels.append(1)
        starts[k] = o.first_appears_frame
    if not prompts:
        return out
    predictor = load_predictor(config)
    with tempfile.TemporaryDirectory(prefix="void-sam2-vlm-") as tmp:
        for i, f in enumerate(frames):
            cv2.imwrite(os.path.join(tmp, f"{i:05d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        run = run_sam2(predictor, tmp, prompts, scale=(1.0, 1.0))
    start = min(starts.values())
    for t, lg in run.logits.items():
        if t >= start:
            out[t] = grid.cells_touched(lg > 0)
    return out


def _write(out_uri, plate, black, first, greys) -> dict[int, int]:
    """Stream black + grey (one per plate frame, None outside the range) -> quadmask at plate
    size; returns the value histogram. Frame 0 of the range is the clip's first frame."""
    hist = dict.fromkeys(quadmask.VALUES, 0)

    def frames():
        for t, (b, g) in enumerate(zip(maskio.read_mask(black, what="black mask"), greys,
                                       strict=True)):
            q = quadmask.combine(b, g, frame_index=t - first)
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

