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


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight (y0, y1, x0, x1) box of the pixels of a uint8 (H, W) mask that are not KEEP,
    or None when there are none. (numpy's min-reductions: ~10x cheaper than compare +
    boundingRect on a 4K frame.)"""
    rows = np.flatnonzero(mask.min(axis=1) != KEEP)
    if not len(rows):
        return None
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero(mask[y0:y1].min(axis=0) != KEEP)
    return y0, y1, int(cols[0]), int(cols[-1]) + 1


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

    Rule (the reference mask tool's): object only -> 0, grey only -> 127, both -> 63, else 255.
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
    aff = np.zeros_like(obj) if affected is None else np.asarray(affected, dtype=bool)
    out = np.full(obj.shape, KEEP, dtype=np.uint8)
    out[aff] = AFFECTED
    out[obj] = REMOVE
    out[obj & aff] = OVERLAP
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


# --- quadmask files: what a mask file may hold, what one is called ----------------------------
# Pixels further than this from every one of the four values are not codec drift: a lossy
# re-encode moves edge pixels a little, a wrong file (the plate, a colour matte) moves most.
FAR_LEVELS = 24
MAX_FAR_FRACTION = 0.02
_FAR = np.array([min(abs(v - q) for q in VALUES) > FAR_LEVELS for v in range(256)])

# File names a sample folder may use for its quadmask, in order of preference. The reference
# loader globs only quadmask_*.mp4 and so never finds trimask_quadmask.mp4.
MASK_NAMES = ("quadmask_0.mp4", "quadmask_*.mp4", "trimask_quadmask.mp4")


def find_quadmask(folder: str) -> str | None:
    """The quadmask video of a sample folder (quadmask_0.mp4, quadmask_*.mp4 or
    trimask_quadmask.mp4), or None."""
    import glob
    import os

    for pattern in MASK_NAMES:
        hits = sorted(glob.glob(os.path.join(folder, pattern)))
        if hits:
            return hits[0]
    return None


def check_levels(raw: np.ndarray, *, frame_index: int = 0, what: str = "quadmask") -> None:
    """Refuse a frame whose grey levels are mostly not near the four values (a wrong file),
    while letting lossy-codec drift through to quantize()."""
    counts = np.bincount(np.asarray(raw, dtype=np.uint8).ravel(), minlength=256)
    far = int(counts[_FAR].sum())
    if far > MAX_FAR_FRACTION * raw.size:
        examples = np.flatnonzero(counts * _FAR)[:: max(1, np.count_nonzero(counts * _FAR) // 5)]
        raise InputError(
            f"{what} frame {frame_index} has values outside 0/63/127/255 even after "
            f"quantizing ({100.0 * far / raw.size:.1f}% of pixels far from all four, e.g. "
            f"{examples[:5].tolist()}): is it a quadmask?")


# Quadmask files are read and written in void_engine.io.maskfile (their one home); these
# names stay importable from here for existing callers.
_FILE_IO = ("read_quadmask", "write_quadmask", "open_quadmask_writer")


def __getattr__(name: str):
    if name in _FILE_IO:
        from void_engine.io import maskfile

        return getattr(maskfile, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
