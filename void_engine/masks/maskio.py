"""Mask files for the mask stages: thin glue over void_engine.quadmask (the one home of mask
IO: quantized reads, lossless writes) and void_engine.io (probe, fsspec URIs).

Black masks (0/255) and grey masks (127/255) are written and read as quadmask frames; they
only use a subset of the four values, so they travel through the same lossless path:
FFV1 .mkv or x264 qp 0 4:4:4 .mp4, chosen by extension.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction

import numpy as np

from void_engine import io as vio
from void_engine import quadmask
from void_engine.errors import InputError


@contextlib.contextmanager
def opened(uri: str, what: str) -> Iterator[vio.PlateInfo]:
    """Probe `uri` (any fsspec URI) and keep its local copy alive inside the block."""
    with vio.local_input(uri, what=what) as local:
        yield vio.probe(local, what=what)


def read_mask(info: vio.PlateInfo, *, first: int = 0, count: int | None = None,
              size: tuple[int, int] | None = None, what: str = "mask") -> Iterator[np.ndarray]:
    """(H, W) uint8 frames quantized to the four values (nearest-neighbour resize)."""
    yield from quadmask.read_quadmask(info.path, first=first, count=count, size=size,
                                      what=what)


def write_mask(uri: str, frames: Iterable[np.ndarray], *, fps: Fraction | float,
               size: tuple[int, int]) -> str:
    """Write (H, W) uint8 mask frames losslessly; the file appears only when complete."""
    ext = os.path.splitext(str(uri))[1].lower()
    if ext not in (".mp4", ".mkv"):
        raise InputError(f"mask output {uri}: use .mp4 (lossless H.264) or .mkv (FFV1)")
    fps = Fraction(fps).limit_denominator(100000)
    with quadmask.open_quadmask_writer(str(uri), fps=fps, size=tuple(size)) as writer:
        for i, frame in enumerate(frames):
            if frame.shape != tuple(size) or frame.dtype != np.uint8:
                raise InputError(f"mask frame {i} is {frame.dtype} {frame.shape}, expected "
                                 f"uint8 {tuple(size)}")
            writer.write(np.ascontiguousarray(frame))
    return str(uri)
