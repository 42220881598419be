"""Defaults in one place (override per run through the CLI / manifest, or the environment)."""
from __future__ import annotations

import os

from void_engine.engines.base import DEFAULT_MODEL_SIZE as _ENGINE_DEFAULT_SIZE


def parse_size(text: str) -> tuple[int, int]:
    """'384x672' -> (384, 672): height x width, the way the reference writes sample_size."""
    try:
        h, w = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"size must look like 384x672 (height x width), got {text!r}") from None
    if h <= 0 or w <= 0 or h % 16 or w % 16:
        raise ValueError(f"size {text!r}: height and width must be positive multiples of 16")
    return h, w


# The working size for engines without their own (home: void_engine.engines.base);
# VOID_MODEL_SIZE overrides it.
DEFAULT_MODEL_SIZE = (parse_size(os.environ["VOID_MODEL_SIZE"]) if os.environ.get("VOID_MODEL_SIZE")
                      else _ENGINE_DEFAULT_SIZE)
DEFAULT_CODEC = "ffv1"
# Review media: total width of the three-column side-by-side movie and contact sheet.
REVIEW_WIDTH = 1440
CONTACT_SHEET_FRAMES = 4
