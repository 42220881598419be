"""Pixel-type conversions between plate depths (uint8, uint16, float32) and the engines' uint8.
Always round, never truncate."""
from __future__ import annotations

import numpy as np


def to_uint8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype == np.uint16:
        # (v * 255 + 32767) // 65535 without float: exact rounding of v / 257.
        return ((frame.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return np.clip(np.rint(frame.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)


def scale_of(dtype: np.dtype) -> float:
    """Value of full white in `dtype`."""
    dtype = np.dtype(dtype)
    return {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(dtype, 1.0)


def from_float(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 in `dtype`'s own scale -> `dtype`, rounded and clipped."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return values.astype(dtype)
    return np.clip(np.rint(values), 0, scale_of(dtype)).astype(dtype)
