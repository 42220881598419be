"""Defaults in one place (override per run through the CLI / manifest, or the environment)."""
from __future__ import annotations

import os

from void_engine.engines.base import DEFAULT_MODEL_SIZE as _ENGINE_DEFAULT_SIZE


def parse_size(text: str) -> tuple[int, int]:
    """'672x384' (width x height, as ffmpeg writes sizes) -> (384, 672) (height, width, as
    arrays and the code hold them)."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"size must look like 672x384 (width x height), got {text!r}") from None
    if h <= 0 or w <= 0 or h % 16 or w % 16:
        raise ValueError(f"size {text!r}: width and height must be positive multiples of 16")
    return h, w


# The working size for engines without their own (home: void_engine.engines.base);
# VOID_MODEL_SIZE (width x height, e.g. 672x384) overrides it.
DEFAULT_MODEL_SIZE = (parse_size(os.environ["VOID_MODEL_SIZE"]) if os.environ.get("VOID_MODEL_SIZE")
                      else _ENGINE_DEFAULT_SIZE)
DEFAULT_CODEC = "ffv1"
# The engine every command uses unless told otherwise (`--engine`, or a manifest row's column).
DEFAULT_ENGINE = "void"
# Review media: total width of the three-column side-by-side movie and contact sheet.
REVIEW_WIDTH = 1440
CONTACT_SHEET_FRAMES = 4
