"""Plate <-> model space: working size, frame rules (padding), and compositing back.

Going in, a plate is stretched to the model's working size (aspect ratio ignored, like the
reference) and padded in time to the engine's FrameRules by ping-pong repetition. Going out,
the padding is dropped (the reference never does this and returns padded, 12 fps clips),
the result is upscaled to plate size and blended into the plate inside the quadmask's change
region only: outside it (dilated + feathered) every output pixel is the plate's own.
"""
from __future__ import annotations

import cv2
import numpy as np

from void_engine.engines.base import FrameRules
from void_engine.io.pixels import from_float, scale_of
from void_engine.quadmask import KEEP

_INTERP = {"lanczos": cv2.INTER_LANCZOS4, "cubic": cv2.INTER_CUBIC,
           "linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}


def padded_length(n: int, rules: FrameRules) -> int:
    """Smallest T >= max(n, min_frames) with T = m*k + 1 (k odd when rules.odd_k).

    For VOID (m=4, odd k, min 85): 46 or 62 -> 85, 86 -> 93, 100 -> 101, 197 -> 197.
    """
    if n <= 0:
        raise ValueError("a clip needs at least one frame")
    t = max(n, rules.min_frames)
    m = max(1, rules.temporal_multiple)
    while True:
        k, rem = divmod(t - 1, m)
        if rem == 0 and (not rules.odd_k or k % 2 == 1):
            return t
        t += 1


def ping_pong(n: int, length: int) -> list[int]:
    """Frame indices of a clip of n frames lengthened to `length` by appending its reversed
    copy repeatedly: 0..n-1, n-1..0, 0..n-1, ... (end frames appear twice, as in the
    reference's temporal padding)."""
    period = 2 * n
    return [i % period if i % period < n else period - 1 - i % period for i in range(length)]


def pad_plan(n: int, rules: FrameRules) -> list[int]:
    """For each model frame, the real frame (0..n-1) it shows."""
    return ping_pong(n, padded_length(n, rules))


def first_occurrence(frame_indices: list[int], n: int) -> list[int]:
    """For each real frame 0..n-1, the model frame that first shows it (drops the padding)."""
    where: dict[int, int] = {}
    for k, j in enumerate(frame_indices):
        where.setdefault(j, k)
    missing = [j for j in range(n) if j not in where]
    if missing:
        raise ValueError(f"model frames never show plate frames {missing[:5]}")
    return [where[j] for j in range(n)]


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Quadmask to (h, w): area-average then re-quantize, as the reference loader does."""
    from void_engine.quadmask import quantize

    if mask.shape[:2] == tuple(size):
        return mask
    return quantize(cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_AREA))


def blend_alpha(change: np.ndarray, dilate_px: int, feather_px: int) -> np.ndarray:
    """float32 alpha: 1 within dilate_px of the change region, a linear ramp to 0 over the
    next feather_px pixels, exactly 0 beyond."""
    outside = np.ascontiguousarray(~change, dtype=np.uint8)
    dist = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.clip((dilate_px + feather_px + 1 - dist) / (feather_px + 1), 0, 1).astype(
        np.float32)


def _bbox(change: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    rows = np.flatnonzero(change.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(change[rows[0]:rows[-1] + 1].any(axis=0))
    h, w = change.shape
    return (slice(max(0, rows[0] - margin), min(h, rows[-1] + 1 + margin)),
            slice(max(0, cols[0] - margin), min(w, cols[-1] + 1 + margin)))


def upscale_crop(small: np.ndarray, plate_size: tuple[int, int], ys: slice, xs: slice,
                 method: str = "lanczos") -> np.ndarray:
    """The (ys, xs) crop of `small` resized to plate_size, computed for the crop only (same
    pixel-centre mapping as cv2.resize), so a small region of a 4K plate costs little."""
    sh, sw = small.shape[:2]
    ph, pw = plate_size
    x = (np.arange(xs.start, xs.stop, dtype=np.float32) + 0.5) * (sw / pw) - 0.5
    y = (np.arange(ys.start, ys.stop, dtype=np.float32) + 0.5) * (sh / ph) - 0.5
    map_x = np.ascontiguousarray(np.broadcast_to(x[None, :], (y.size, x.size)))
    map_y = np.ascontiguousarray(np.broadcast_to(y[:, None], (y.size, x.size)))
    return cv2.remap(small, map_x, map_y, _INTERP[method], borderMode=cv2.BORDER_REPLICATE)


def composite_frame(plate: np.ndarray, mask: np.ndarray, result_small: np.ndarray, *,
                    dilate_px: int = 8, feather_px: int = 8,
                    upscale: str = "lanczos") -> np.ndarray:
    """Blend the model-space result into one plate frame.

    plate: (H, W, 3) uint8/uint16/float32; mask: (H, W) quantized quadmask at plate size;
    result_small: (h, w, 3) uint8 model-space result. Works on the change region's bounding
    box only; every pixel outside the dilated + feathered region is the plate's, bit for bit.
    """
    change = mask != KEEP
    margin = dilate_px + feather_px + 2
    box = _bbox(change, margin)
    out = plate if plate.flags.writeable else plate.copy()
    if box is None:
        return out
    ys, xs = box
    alpha = blend_alpha(change[ys, xs], dilate_px, feather_px)[..., None]
    res = upscale_crop(result_small, plate.shape[:2], ys, xs, upscale).astype(np.float32)
    if plate.dtype != np.uint8:
        res *= scale_of(plate.dtype) / 255.0
    base = out[ys, xs].astype(np.float32)
    blended = from_float(base + alpha * (res - base), plate.dtype)
    inside = alpha[..., 0] > 0
    out[ys, xs][inside] = blended[inside]
    return out
