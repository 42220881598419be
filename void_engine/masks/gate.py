"""The morphing gate for passes="auto": does the pass-1 result need pass 2?

VOID's pass 2 exists to fix objects whose shape drifts ("morphs") from frame to frame in the
synthesized content. The gate measures exactly that on the pass-1 result, inside the change
region (every non-KEEP quadmask pixel, grown a little): for each pair of consecutive real
frames, DIS optical flow maps frame t+1 onto frame t, and the mean absolute difference after
warping (grey levels, 0-255) is what the flow cannot explain: rigid or smoothly moving content
warps back almost exactly, content that changes shape does not. Pixels whose flow fails the
forward-backward check (occlusions at moving edges) or leaves the frame are left out.

score = mean of the per-pair errors over the clip's pairs; run_pass2 = score > threshold.
An optional judge (e.g. a VLM) may add a vote for pass 2 but never cancels a measured one.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from void_engine import optical_flow as flow
from void_engine import quadmask
from void_engine.redact import redact

# part of the stage cache key (tasks read it): bump when the score for the same input changes
__version__ = "warp-error-1"

# Calibrated on 24 generated clips at the model size (`void-batch eval gate`, docs/quality.md):
# pass-1 results with a rigid synthesized object score 0.5-2.3 (the truth and propagate's
# fills 0-0.85), ones whose object deforms 1.4-7.0. At 1.32 every morphing result of the
# calibration set and of a held-out one goes to pass 2, and 10-11% of the others do (a third
# of the rigid objects): the cut errs towards pass 2, which costs time, not the shot (ROC AUC
# 0.999 / 0.988). The score is in grey levels and grows with the content's contrast: the
# high-contrast clips of tests/void_engine/masks/test_gate.py score 3-4.7 rigid and 8-10
# morphing.
DEFAULT_THRESHOLD = float(os.environ.get("VOID_GATE_THRESHOLD", "1.32"))
FB_MAX_PX = 1.0  # forward-backward disagreement above this = unreliable flow (occlusion)
GROW_FRAC = 0.02  # change region grown by this fraction of the short side


@dataclass
class GateResult:
    score: float
    threshold: float
    run_pass2: bool
    details: dict = field(default_factory=dict)


def morphing_gate(decoded, pass1_path: str, *, threshold: float | None = None,
                  judge: Callable[[np.ndarray, np.ndarray], dict] | None = None) -> GateResult:
    """decoded: a stages.DecodedShot (its model-space quadmask and frame mapping);
    pass1_path: the pass-1 result .npy (T, H, W, 3) uint8, model space."""
    threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    video = np.load(pass1_path, mmap_mode="r")
    masks = np.load(decoded.mask_path, mmap_mode="r")
    if video.shape[:3] != masks.shape[:3]:
        raise ValueError(f"pass-1 result {video.shape[:3]} and mask {masks.shape[:3]} differ")
    pairs = real_pairs(getattr(decoded.mapping, "frame_indices", None) or [], len(video))
    score, details = warp_error_score(video, masks, pairs)
    run = score > threshold
    details["decision"] = "measured"
    if judge is not None and run:
        details["judge"] = {"asked": False, "why": "the measure already runs pass 2"}
    elif judge is not None:
        verdict = _ask_judge(judge, video, masks)
        details["judge"] = verdict
        if verdict.get("run_pass2"):
            run = True
            details["decision"] = "judge added pass 2"
    return GateResult(score=score, threshold=threshold, run_pass2=bool(run), details=details)


def _ask_judge(judge, video, masks) -> dict:
    """The judge's verdict; a judge that raises adds nothing (the measure stands)."""
    try:
        return {"asked": True, **dict(judge(np.asarray(video), np.asarray(masks)) or {})}
    except Exception as exc:  # noqa: BLE001 - an optional vote must not fail the stage
        return {"asked": True, "run_pass2": False,
                "error": redact(f"{type(exc).__name__}: {str(exc)[:160]}")}


def real_pairs(frame_indices: list[int], length: int) -> list[tuple[int, int]]:
    """Consecutive model frames showing consecutive plate frames (padding skipped)."""
    if not frame_indices:
        return [(t, t + 1) for t in range(length - 1)]
    seen, pairs = set(), []
    for t in range(min(length, len(frame_indices)) - 1):
        a, b = frame_indices[t], frame_indices[t + 1]
        if b == a + 1 and a not in seen:
            seen.add(a)
            pairs.append((t, t + 1))
    return pairs


def warp_error_score(video: np.ndarray, masks: np.ndarray,
                     pairs: list[tuple[int, int]]) -> tuple[float, dict]:
    """Mean flow-warp error (grey levels) inside the change region over `pairs`."""
    h, w = video.shape[1:3]
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * max(1, round(GROW_FRAC * min(
        h, w))) + 1,) * 2)
    per_pair, used_frac, baseline = [], [], []
    for a, b in pairs:
        region = quadmask.change_region(masks[a]) | quadmask.change_region(masks[b])
        if not region.any():
            continue
        region = cv2.dilate(region.astype(np.uint8), grow).astype(bool)
        fa, fb = np.asarray(video[a]), np.asarray(video[b])
        fwd = flow.dis_flow(fa, fb)
        bwd = flow.dis_flow(fb, fa)
        reliable = (flow.forward_backward_error(fwd, bwd) <= FB_MAX_PX) & ~flow.out_of_frame(fwd)
        valid = region & reliable
        outside = ~region & reliable
        warped = flow.backward_warp(fb, fwd).astype(np.float32)
        err = np.abs(fa.astype(np.float32) - warped).mean(axis=-1)
        inside_err = float(err[valid].mean()) if valid.any() else 255.0
        # the untouched plate around it sets the floor (noise, grain, resampling blur)
        base = float(err[outside].mean()) if outside.sum() > 0.05 * outside.size else 0.0
        per_pair.append(max(0.0, inside_err - base))
        baseline.append(base)
        used_frac.append(float(valid.sum() / region.sum()))
    if not per_pair:
        return 0.0, {"pairs": 0, "reason": "no change region in any frame pair"}
    arr = np.array(per_pair)
    return float(arr.mean()), {
        "measure": "flow-warp error in change region (grey levels)",
        "pairs": len(per_pair), "p90": float(np.percentile(arr, 90)), "max": float(arr.max()),
        "reliable_fraction": float(np.mean(used_frac)),
        "baseline": float(np.mean(baseline)),
        "per_pair": [round(v, 3) for v in per_pair]}
