"""The quadmask: the one home of the four values and every rule about them.

A quadmask frame is a uint8 (H, W) array holding only:

    0   REMOVE    the primary object to remove
    63  OVERLAP   primary object overlapping a region its removal affects
    127 AFFECTED  region that changes because of the removal (falls, moves, shadow...)
    255 KEEP      background, untouched

Masks travel through lossy codecs and resizes, so every reader quantizes with the midpoint
thresholds the VOID loaders use (<=31 -> 0, 32-95 -> 63, 96-191 -> 127, >=192 -> 255). That
recovers the exact values from full-range decodes, limited-range Y planes (16/70/125/235) and
lossy re-encodes alike.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from void_engine.errors import InputError

REMOVE = 0
OVERLAP = 63
AFFECTED = 127
KEEP = 255
VALUES = (REMOVE, OVERLAP, AFFECTED, KEEP)

# Upper bounds (inclusive) of the quantization bins, in order of VALUES.
THRESHOLDS = (31, 95, 191)

_LUT = np.empty(256, dtype=np.uint8)
_LUT[: THRESHOLDS[0] + 1] = REMOVE
_LUT[THRESHOLDS[0] + 1 : THRESHOLDS[1] + 1] = OVERLAP
_LUT[THRESHOLDS[1] + 1 : THRESHOLDS[2] + 1] = AFFECTED
_LUT[THRESHOLDS[2] + 1 :] = KEEP


def quantize(values: np.ndarray) -> np.ndarray:
    """Snap any grey levels to the four quadmask values (uint8 out, same shape).

    Colour input (..., 3) uses channel 0, like the reference loader. Float input is taken as
    0..255 grey levels when its max exceeds 1, else as 0..1.
    """
    a = np.asarray(values)
    if a.ndim >= 3 and a.shape[-1] in (3, 4):
        a = a[..., 0]
    if a.dtype != np.uint8:
        f = a.astype(np.float32)
        if f.size and float(f.max()) <= 1.0:
            f = f * 255.0
        a = np.clip(np.rint(f), 0, 255).astype(np.uint8)
    return _LUT[a]


def is_quantized(mask: np.ndarray) -> bool:
    """True when every value of `mask` is one of the four."""
    present = np.unique(np.asarray(mask))
    return bool(np.isin(present, VALUES).all())


def change_region(mask: np.ndarray) -> np.ndarray:
    """Boolean map of pixels the removal may change (everything but KEEP)."""
    return np.asarray(mask) != KEEP


def remove_region(mask: np.ndarray) -> np.ndarray:
    """Boolean map of the primary object (REMOVE or OVERLAP)."""
    m = np.asarray(mask)
    return (m == REMOVE) | (m == OVERLAP)


def affected_region(mask: np.ndarray) -> np.ndarray:
    """Boolean map of the affected region (AFFECTED or OVERLAP)."""
    m = np.asarray(mask)
    return (m == AFFECTED) | (m == OVERLAP)


def histogram(mask: np.ndarray) -> dict[int, int]:
    """Pixel count per quadmask value."""
    m = np.asarray(mask)
    return {v: int(np.count_nonzero(m == v)) for v in VALUES}


def combine(black: np.ndarray, grey: np.ndarray | None, *, frame_index: int | None = None,
            clear_grey_on_first_frame: bool = True) -> np.ndarray:
    """Combine a primary (black) mask and an affected (grey) mask into a quadmask frame.

    black: 0 where the primary object is, 255 elsewhere (any levels; <128 counts as object).
    grey:  127 where the removal affects the scene, 255 elsewhere (levels 96-191 count as grey,
           so lossy masks still combine), or None for no affected region.

    Rule (mask-reasoning.md §5.1): object only -> 0, grey only -> 127, both -> 63, else 255.
    Frame-0 convention: the reference clears grey on frame 0 but leaves 63 in place; we clear
    the whole affected component on frame 0 (63 -> 0, 127 -> 255), which is what the
    convention "nothing is affected before anything happened" means. Pass
    clear_grey_on_first_frame=False to keep grey on frame 0.
    """
    b = np.asarray(black)
    if b.ndim == 3:
        b = b[..., 0]
    obj = b < 128
    if grey is None:
        aff = np.zeros_like(obj)
    else:
        g = np.asarray(grey)
        if g.ndim == 3:
            g = g[..., 0]
        if g.shape != b.shape:
            raise InputError(f"black mask is {b.shape[1]}x{b.shape[0]} but grey mask is "
                             f"{g.shape[1]}x{g.shape[0]}")
        aff = quantize(g) == AFFECTED
        aff |= quantize(g) == OVERLAP  # a grey mask written as a quadmask keeps its overlap
    if clear_grey_on_first_frame and frame_index == 0:
        aff = np.zeros_like(obj)
    out = np.full(b.shape, KEEP, dtype=np.uint8)
    out[aff] = AFFECTED
    out[obj] = REMOVE
    out[obj & aff] = OVERLAP
    return out


def from_binary(binary: np.ndarray, affected: np.ndarray | None = None) -> np.ndarray:
    """Quadmask from a boolean/0-1/0-255 object mask (True/nonzero = remove) and an optional
    boolean affected mask."""
    obj = np.asarray(binary)
    if obj.ndim == 3 and obj.shape[-1] in (3, 4):
        obj = obj[..., 0]
    obj = obj.astype(bool) if obj.dtype == bool or obj.max(initial=0) <= 1 else obj >= 128
    out = np.full(obj.shape, KEEP, dtype=np.uint8)
    if affected is not None:
        out[np.asarray(affected, dtype=bool)] = AFFECTED
        out[obj & np.asarray(affected, dtype=bool)] = OVERLAP
        out[obj & ~np.asarray(affected, dtype=bool)] = REMOVE
    else:
        out[obj] = REMOVE
    return out


def validate_frames(masks: Iterable[np.ndarray], *, expected_frames: int,
                    expected_size: tuple[int, int], what: str = "quadmask") -> dict[int, int]:
    """Check a stream of (already quantized) mask frames against the plate.

    expected_size is (height, width). Raises InputError naming the problem; returns the value
    histogram over all frames.
    """
    counts = dict.fromkeys(VALUES, 0)
    n = 0
    for frame in masks:
        if frame.shape[:2] != tuple(expected_size):
            raise InputError(
                f"{what} is {frame.shape[1]}x{frame.shape[0]} but the plate is "
                f"{expected_size[1]}x{expected_size[0]}")
        if not is_quantized(frame):
            bad = sorted(set(np.unique(frame).tolist()) - set(VALUES))[:5]
            raise InputError(f"{what} frame {n} has values {bad} outside 0/63/127/255")
        for v, c in histogram(frame).items():
            counts[v] += c
        n += 1
    if n != expected_frames:
        raise InputError(f"{what} has {n} frames but the plate has {expected_frames}")
    if counts[KEEP] == sum(counts.values()):
        raise InputError(f"{what} is empty: no pixel is marked for removal (all 255)")
    return counts
