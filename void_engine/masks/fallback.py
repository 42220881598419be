"""Deterministic affected region without a VLM (no endpoint, outage, invalid answers).

Per frame, grey = grid cells touched by
  (a) contact: a ring around the primary object (its mask dilated by ring_frac of the short
      side, minus the object itself): what the object touches, presses, shadows; and
  (b) motion near it: pixels within near_frac of the object that move (DIS optical flow from
      the previous frame, camera motion removed as the median flow of the frame) and are not
      the object itself: what it pushes, carries or knocks over.
Same inputs -> same cells, so a batch never stalls on a VLM and reruns agree. Runs on
downscaled frames; cells are resolution-independent.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from void_engine import optical_flow as flow
from void_engine.masks.grid import Grid


@dataclass(frozen=True)
class FallbackParams:
    ring_frac: float = 0.03  # contact ring width, fraction of the short side
    near_frac: float = 0.25  # how far from the object motion still counts
    motion_px: float = 2.0  # flow magnitude (analysis pixels/frame) that counts as moving
    min_blob_frac: float = 0.003  # ignore moving specks smaller than this (of frame area)
    fb_max_px: float = 1.0  # forward-backward flow disagreement above this = unreliable


def _disc(radius: int) -> np.ndarray:
    r = max(1, int(radius))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def fallback_cells(frames: np.ndarray, obj: np.ndarray, grid: Grid,
                   params: FallbackParams = FallbackParams()) -> tuple[np.ndarray, dict]:
    """frames (T, h, w, 3) uint8, obj (T, h, w) bool primary object -> ((T, R, C), details)."""
    t_count, h, w = obj.shape
    short = min(h, w)
    ring_k = _disc(round(params.ring_frac * short))
    near_k = _disc(round(params.near_frac * short))
    margin_k = _disc(max(2, round(0.05 * short)))  # DIS smears motion a few px past edges
    min_blob = max(1, int(params.min_blob_frac * h * w))
    cells = np.zeros((t_count, grid.rows, grid.cols), dtype=bool)
    contact_n = motion_n = 0
    for t in range(t_count):
        o = obj[t].astype(np.uint8)
        if not o.any():
            continue
        ring = cv2.dilate(o, ring_k).astype(bool) & ~obj[t]
        c = grid.cells_touched(ring)
        contact_n += int(c.sum())
        cells[t] |= c
        if t == 0:
            continue
        fwd = flow.dis_flow(frames[t - 1], frames[t])
        bwd = flow.dis_flow(frames[t], frames[t - 1])
        # DIS smears motion into the background an object uncovers; such flow disagrees with
        # the backward flow, so only forward-backward consistent motion counts
        consistent = flow.forward_backward_error(fwd, bwd) <= params.fb_max_px
        f = fwd - np.median(fwd.reshape(-1, 2), axis=0)  # camera motion
        moving = (np.linalg.norm(f, axis=-1) > params.motion_px) & consistent
        # the object's own motion (both positions, with a margin for flow blur) is not an effect
        own = cv2.dilate((obj[t] | obj[t - 1]).astype(np.uint8), margin_k).astype(bool)
        near = cv2.dilate(o, near_k).astype(bool)
        cand = (moving & near & ~own).astype(np.uint8)
        cand = cv2.morphologyEx(cand, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
        keep = np.isin(labels, [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_blob])
        # the leading edge of a moving thing is an occlusion (no consistent flow): grow back
        keep = cv2.dilate(keep.astype(np.uint8), margin_k).astype(bool) & near
        m = grid.cells_touched(keep)
        motion_n += int((m & ~cells[t]).sum())
        cells[t] |= m
    return cells, {"params": asdict(params), "contact_cells": contact_n,
                   "motion_cells": motion_n}

