"""Mask files for the mask stages: the names they use for void_engine.io.maskfile (the one home
of quadmask file IO: quantized reads, lossless writes, fsspec URIs).

Black masks (0/255) and grey masks (127/255) are written and read as quadmask frames; they
only use a subset of the four values, so they travel through the same lossless path:
FFV1 .mkv or x264 qp 0 4:4:4 .mp4, chosen by extension.
"""
from __future__ import annotations

from void_engine import io as vio
from void_engine.io.maskfile import opened, read_mask, write_mask

__all__ = ["opened", "read_mask", "vio", "write_mask"]
