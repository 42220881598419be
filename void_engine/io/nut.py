"""Raw frames with their own timestamps, for the encoder's stdin: a NUT stream (rawvideo in
NUT, written with PyAV). Raw pixels carry no time, so this is how a variable-rate plate's
per-frame presentation times reach ffmpeg, which then keeps them (see io.commands)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np


class NutFeed:
    """Write (H, W, C) frames of one raw pixel format, each with its pts in `time_base`
    units, as a NUT stream to `pipe`."""

    def __init__(self, pipe, pix_fmt: str, size: tuple[int, int], time_base: Fraction):
        import av

        self._av = av
        self.pix_fmt, self.time_base = pix_fmt, Fraction(time_base)
        self._container = av.open(pipe, "w", format="nut")
        self._stream = self._container.add_stream("rawvideo")
        self._stream.width, self._stream.height = size[1], size[0]
        self._stream.pix_fmt = pix_fmt
        self._stream.time_base = self.time_base
        self._stream.codec_context.time_base = self.time_base

    def write(self, frame: np.ndarray, pts: int) -> None:
        try:
            vf = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame),
                                                  format=self.pix_fmt)
            vf.pts, vf.time_base = int(pts), self.time_base
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        except self._av.FFmpegError as exc:  # a closed pipe, as PyAV words it
            raise BrokenPipeError(str(exc)) from exc

    def close(self) -> None:
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
