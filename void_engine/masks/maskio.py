"""Mask files for the mask stages, on top of void_engine.io (no IO of its own beyond choosing
a lossless encoding for single-channel masks).

Reading gives the raw grey level per pixel (callers threshold a black mask at 128 and
quantize a quadmask); writing is always lossless: FFV1 (.mkv), H.264 qp 0 4:4:4 (.mp4/.mov,
what the VOID loaders and the reference masks use) or a PNG sequence (a folder).
When void_engine.quadmask grows read_quadmask/write_quadmask, this module should delegate
to them (one home for mask IO).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction

import numpy as np

from void_engine import io as vio
from void_engine.errors import InputError
from void_engine.io.video import VideoWriter


@contextlib.contextmanager
def opened(uri: str, what: str) -> Iterator[vio.PlateInfo]:
    """Probe `uri` (any fsspec URI) and keep its local copy alive inside the block."""
    with vio.local_input(uri, what=what) as local:
        yield vio.probe(local, what=what)


def read_grey(info: vio.PlateInfo, *, first: int = 0, count: int | None = None,
              size: tuple[int, int] | None = None, what: str = "mask") -> Iterator[np.ndarray]:
    """(H, W) uint8 grey frames: the luma plane of a video, channel 0 of a sequence."""
    count = info.frames - first if count is None else count
    if info.kind == "video":
        yield from vio.read_video(info.path, first=first, count=count, size=size,
                                  dtype=np.uint8, channels=1, what=what)
        return
    for frame in vio.read_frames(info, first=first, count=count, size=size, uint8=True,
                                 what=what):
        yield frame[..., 0] if frame.ndim == 3 else frame


class _LosslessH264(VideoWriter):
    """x264 at qp 0 in 4:4:4: mathematically lossless on the luma plane."""

    def _codec_args(self, codec, w, h, crf):  # noqa: ARG002 - interface of VideoWriter
        return ["-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", "-pix_fmt", "yuv444p"]


def write_grey(uri: str, frames: Iterable[np.ndarray], *, fps: Fraction | float,
               size: tuple[int, int]) -> str:
    """Write (H, W) uint8 frames losslessly; the file appears only when complete."""
    ext = os.path.splitext(str(uri))[1].lower()
    h, w = size

    def rgb(frame: np.ndarray) -> np.ndarray:
        if frame.shape != (h, w) or frame.dtype != np.uint8:
            raise InputError(f"mask frame is {frame.dtype} {frame.shape}, expected uint8 "
                             f"{(h, w)}")
        return np.repeat(frame[..., None], 3, axis=2)

    fps = Fraction(fps).limit_denominator(100000)
    if ext in (".mp4", ".mov"):
        vio.check_writable(uri)
        with vio.local_output(uri) as local:
            writer = _LosslessH264(local, "h264", fps=fps, size=size)
            try:
                for f in frames:
                    writer.write(rgb(f))
            except BaseException:
                writer.abort()
                raise
            writer.close()
        return str(uri)
    codec = "ffv1" if ext == ".mkv" else "png" if ext == "" else None
    if codec is None:
        raise InputError(f"mask output {uri}: use .mp4/.mov (lossless H.264), .mkv (FFV1) "
                         "or a folder (PNG frames)")
    with vio.open_writer(str(uri), codec, fps=fps, size=size) as writer:
        for f in frames:
            writer.write(rgb(f))
    return str(uri)
