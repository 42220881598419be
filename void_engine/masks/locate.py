"""The objects the VLM names, found in pixels: detector boxes and the VLM's own boxes/points
prompt SAM2, which propagates each object both ways through the clip.

- Affected objects: their SAM2 masks add grey cells from the object's first_appears_frame on
  (on top of the VLM's grid cells, which also say where an object WOULD be without the
  primary: a mask of where it is cannot say that).
- Integral belongings (worn or ridden: a hat, a bike): their SAM2 masks join the black
  (removal) mask, as the reference's VLM step asks and its code never did.

A text-prompted detector finds every instance of a category ("box" finds all boxes), so a
detection counts for a name only near the primary object on that frame (the reference keeps
segmentations within a band around the primary mask for the same reason): affected objects
within `near_frac` of the short side or inside the VLM's cells for that object, belongings
within `belong_frac`. The best such detection per name and frame prompts SAM2. Only
"physical" objects are grounded: detectors have no notion of "the shadow of the duck", so
visual artifacts keep their VLM cells (the reference asks the VLM for cells for them for the
same reason).
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field

import cv2
import numpy as np

from void_engine.masks.grid import Grid
from void_engine.masks.grounding import Detection, clean_nouns
from void_engine.masks.prompts import ObjectPrompts
from void_engine.masks.segment import run_sam2
from void_engine.masks.vlm.prompt import sample_indices
from void_engine.masks.vlm.schema import VlmAnswer

NEAR_FRAC = 0.25  # affected objects: how far from the primary a detection may lie
BELONG_FRAC = 0.05  # belongings touch the primary


@dataclass
class Target:
    obj_id: int
    noun: str
    kind: str  # "affected" | "belonging"
    start: int  # first frame it counts (affected: first_appears_frame)
    groundable: bool
    vlm_cells: np.ndarray | None = None  # (T, R, C) the VLM's cells (affected only)
    prompts: dict[int, ObjectPrompts] = field(default_factory=dict)  # frame -> prompts
    detections: list[dict] = field(default_factory=list)


@dataclass
class Located:
    cells: np.ndarray  # (T, R, C) grey cells of the affected objects' masks
    belongings: np.ndarray | None  # (T, h, w) float16 SAM2 logits (max over belongings)
    grounded: list[str]  # names the detector found near the primary
    details: dict


def targets_of(answer: VlmAnswer, grid: Grid, shape: tuple[int, int, int],
               min_confidence: float, cells_of) -> list[Target]:
    """One SAM2 object per confident affected object and per belonging, with the VLM's boxes
    and points as prompts (analysis pixels). cells_of(obj) -> (T, R, C) VLM cells."""
    n, h, w = shape
    out: list[Target] = []
    for o in answer.affected_objects:
        if o.confidence < min_confidence:
            continue
        t = Target(len(out) + 1, o.noun, "affected", o.first_appears_frame,
                   o.category == "physical", vlm_cells=cells_of(o))
        for frame, box in o.boxes:
            _prompt(t, frame).box = _px(box, w, h)
        for frame, x, y in o.points:
            p = _prompt(t, frame)
            p.points.append((x * w, y * h))
            p.labels.append(1)
        out.append(t)
    for b in answer.integral_belongings:
        t = Target(len(out) + 1, b.noun, "belonging", 0, True)
        for frame, box in b.boxes:
            _prompt(t, frame).box = _px(box, w, h)
        out.append(t)
    return out


def _prompt(t: Target, frame: int) -> ObjectPrompts:
    return t.prompts.setdefault(frame, ObjectPrompts([], []))


def _px(box, w: int, h: int) -> tuple[float, float, float, float]:
    return (box[0] * w, box[1] * h, box[2] * w, box[3] * h)


def ground(detector, frames: np.ndarray, obj: np.ndarray, targets: list[Target], grid: Grid,
           detect_frames: int) -> list[str]:
    """Run the detector on a few frames with every groundable name as a text query; the best
    detection near the primary becomes that target's box prompt on that frame. Returns the
    names found."""
    wanted = [t for t in targets if t.groundable and clean_nouns([t.noun])]
    if not wanted:
        return []
    n, h, w = obj.shape
    check = sorted(set(sample_indices(n, detect_frames)) | {min(t.start, n - 1) for t in wanted})
    nouns = clean_nouns([t.noun for t in wanted])
    short = min(h, w)
    for f in check:
        detections = detector.detect(frames[f], nouns)
        for t in wanted:
            if f < t.start:
                continue
            frac = NEAR_FRAC if t.kind == "affected" else BELONG_FRAC
            region = _dilate(obj[f], round(frac * short))
            if t.vlm_cells is not None:
                region |= grid.rasterize(t.vlm_cells[f], h, w)
            best = _best_near(detections, clean_nouns([t.noun])[0], region)
            if best is None:
                continue
            _prompt(t, f).box = best.box  # a detector box is tighter than a VLM guess
            t.detections.append({"frame": f, "score": round(best.score, 4),
                                 "box": [round(v, 1) for v in best.box]})
    return [t.noun for t in wanted if t.detections]


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    r = max(1, radius)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def _best_near(detections: list[Detection], noun: str, region: np.ndarray) -> Detection | None:
    for d in detections:  # best first per noun
        x0, y0, x1, y1 = d.box
        if d.noun == noun and region[int(y0):math.ceil(y1), int(x0):math.ceil(x1)].any():
            return d
    return None


def segment_targets(get_predictor, frames: np.ndarray, targets: list[Target],
                    grid: Grid) -> tuple[np.ndarray, np.ndarray | None, dict[int, int]]:
    """SAM2 on every prompted target, both ways. Returns the affected objects' grey cells
    (from each one's start frame), the belongings' logits, and pixels per target."""
    n, h, w = frames.shape[:3]
    cells = np.zeros((n, grid.rows, grid.cols), dtype=bool)
    prompts = {(f, t.obj_id): p for t in targets for f, p in t.prompts.items()}
    by_id = {t.obj_id: t for t in targets}
    # "very much background" (finite, so upscaling never mixes infinities into NaN)
    belong = (np.full((n, h, w), -1e4, np.float16)
              if any(t.kind == "belonging" and t.prompts for t in targets) else None)
    pixels: dict[int, int] = dict.fromkeys(by_id, 0)
    if not prompts:
        return cells, belong, pixels

    def sink(frame: int, obj_ids: list[int], logits: np.ndarray) -> None:
        for oid, lg in zip(obj_ids, logits, strict=True):
            t, m = by_id[oid], lg > 0
            pixels[oid] = max(pixels[oid], int(m.sum()))
            if t.kind == "belonging":
                belong[frame] = np.maximum(belong[frame], lg.astype(np.float16))
            elif frame >= t.start:
                cells[frame] |= grid.cells_touched(m)

    with tempfile.TemporaryDirectory(prefix="void-sam2-locate-") as tmp:
        for i, f in enumerate(frames):
            cv2.imwrite(os.path.join(tmp, f"{i:05d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        run_sam2(get_predictor(), tmp, prompts, scale=(1.0, 1.0), sink=sink)
    return cells, belong, pixels


def locate(frames: np.ndarray, obj: np.ndarray, answer: VlmAnswer, grid: Grid, *,
           get_predictor, get_detector=None, min_confidence: float = 0.3,
           detect_frames: int = 4, cells_of) -> Located:
    """frames (T, h, w, 3) and the primary object obj (T, h, w) at analysis size. The models
    come from get_predictor() / get_detector() (None: no grounding), called only when there
    is something for them to do."""
    targets = targets_of(answer, grid, obj.shape, min_confidence, cells_of)
    queries = clean_nouns([t.noun for t in targets if t.groundable])
    detector = get_detector() if get_detector is not None and queries else None
    grounded = ground(detector, frames, obj, targets, grid, detect_frames) if detector else []
    cells, belong, pixels = segment_targets(get_predictor, frames, targets, grid)
    details = {"queries": queries if detector else [],
               "objects": [{"noun": t.noun, "kind": t.kind, "prompted_frames": sorted(t.prompts),
                            "detections": t.detections, "max_pixels": pixels[t.obj_id]}
                           for t in targets]}
    return Located(cells=cells, belongings=belong, grounded=grounded, details=details)
