"""The VLM's answer -> grey (affected) cells per frame, as a (T, R, C) boolean cell map.

Everything the answer says about *where* is used (the reference only used the noun):
- grid_localizations: cell sets on keyframes, carried between keyframes by moving the
  earlier set towards the later one (and vice versa) along the line between their centres,
  so a ball that rolls across the table covers the cells in between, not just both ends;
- trajectory_path + object_size_grids: a block of cells whose centre is interpolated
  linearly between keyframes;
- boxes / points (0..1 of the frame): cells they touch (or SAM2 masks from them, done by the
  caller when a segmenter is configured).
Nothing is grey before the object's first_appears_frame. Objects below min_confidence are
skipped and listed in the details.
"""
from __future__ import annotations

import numpy as np

from void_engine.masks.grid import Grid, fill_box
from void_engine.masks.vlm.schema import AffectedObject, VlmAnswer


def shift_cells(cells: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """Translate a cell map, dropping what leaves the grid."""
    rows, cols = cells.shape
    out = np.zeros_like(cells)
    src = cells[max(0, -dr):rows - max(0, dr), max(0, -dc):cols - max(0, dc)]
    out[max(0, dr):max(0, dr) + src.shape[0], max(0, dc):max(0, dc) + src.shape[1]] = src
    return out


def _centroid(cells: np.ndarray) -> np.ndarray:
    rr, cc = np.nonzero(cells)
    return np.array([rr.mean(), cc.mean()]) if rr.size else np.zeros(2)


def interpolate_keyframes(keys: dict[int, np.ndarray], num_frames: int,
                          start: int = 0) -> np.ndarray:
    """(T, R, C) from {frame: (R, C) cells}: held before the first and after the last key,
    blended by translation in between; empty before `start`."""
    frames = sorted(k for k in keys if 0 <= k < num_frames)
    if not frames:
        raise ValueError("no keyframes inside the clip")
    shape = keys[frames[0]].shape
    out = np.zeros((num_frames, *shape), dtype=bool)
    for t in range(num_frames):
        if t <= frames[0]:
            out[t] = keys[frames[0]]
        elif t >= frames[-1]:
            out[t] = keys[frames[-1]]
        else:
            b = next(k for k in frames if k >= t)
            a = max(k for k in frames if k <= t)
            if a == b:
                out[t] = keys[a]
                continue
            f = (t - a) / (b - a)
            d = _centroid(keys[b]) - _centroid(keys[a])
            da = np.rint(f * d).astype(int)
            db = np.rint(-(1 - f) * d).astype(int)
            out[t] = shift_cells(keys[a], *da) | shift_cells(keys[b], *db)
    out[:max(0, start)] = False
    return out


def box_cells(grid: Grid, box: tuple[float, float, float, float]) -> np.ndarray:
    """Cells touched by a box given as fractions (x0, y0, x1, y1) of the frame."""
    x0, y0, x1, y1 = box
    cells = np.zeros((grid.rows, grid.cols), dtype=bool)
    r0, r1 = int(np.floor(y0 * grid.rows)), int(np.ceil(y1 * grid.rows))
    c0, c1 = int(np.floor(x0 * grid.cols)), int(np.ceil(x1 * grid.cols))
    cells[max(0, r0):min(grid.rows, max(r1, r0 + 1)),
          max(0, c0):min(grid.cols, max(c1, c0 + 1))] = True
    return cells


def object_cells(obj: AffectedObject, grid: Grid, num_frames: int) -> np.ndarray:
    """(T, R, C) grey cells of one affected object."""
    out = np.zeros((num_frames, grid.rows, grid.cols), dtype=bool)
    start = obj.first_appears_frame
    keys: dict[int, np.ndarray] = {}
    for frame, cells in obj.grid_localizations.items():
        m = keys.setdefault(frame, np.zeros((grid.rows, grid.cols), dtype=bool))
        for r, c in cells:
            m[r, c] = True
    for frame, box in obj.boxes:
        keys.setdefault(frame, np.zeros((grid.rows, grid.cols), dtype=bool))
        keys[frame] |= box_cells(grid, box)
    for frame, x, y in obj.points:
        keys.setdefault(frame, np.zeros((grid.rows, grid.cols), dtype=bool))
        keys[frame][min(grid.rows - 1, int(y * grid.rows)), min(grid.cols - 1,
                                                                int(x * grid.cols))] = True
    keys = {k: v for k, v in keys.items() if v.any()}
    if keys:
        out |= interpolate_keyframes(keys, num_frames, start)
    if obj.trajectory_path:
        size = obj.object_size_grids or (2, 2)
        path = obj.trajectory_path
        t0 = min(start, path[0][0])
        for t in range(t0, num_frames):
            r, c = _along(path, t)
            fill_box(out[t], r, c, *size)
    return out


def _along(path: list[tuple[int, int, int]], t: int) -> tuple[float, float]:
    """Centre (row, col) at frame t, linear between trajectory keyframes, held outside."""
    if t <= path[0][0]:
        return float(path[0][1]), float(path[0][2])
    if t >= path[-1][0]:
        return float(path[-1][1]), float(path[-1][2])
    for (fa, ra, ca), (fb, rb, cb) in zip(path, path[1:], strict=False):
        if fa <= t <= fb:
            f = 0.0 if fb == fa else (t - fa) / (fb - fa)
            return ra + f * (rb - ra), ca + f * (cb - ca)
    return float(path[-1][1]), float(path[-1][2])


def answer_cells(answer: VlmAnswer, grid: Grid, num_frames: int,
                 min_confidence: float = 0.3) -> tuple[np.ndarray, dict]:
    """Union of every confident affected object's cells, and per-object details."""
    out = np.zeros((num_frames, grid.rows, grid.cols), dtype=bool)
    used, skipped = [], []
    for obj in answer.affected_objects:
        if obj.confidence < min_confidence:
            skipped.append({"noun": obj.noun, "confidence": obj.confidence})
            continue
        cells = object_cells(obj, grid, num_frames)
        out |= cells
        used.append({"noun": obj.noun, "category": obj.category, "effect": obj.effect,
                     "will_move": obj.will_move, "confidence": obj.confidence,
                     "cells": int(cells.sum())})
    return out, {"objects": used, "skipped_low_confidence": skipped}
