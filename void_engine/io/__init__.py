"""Plate IO: probe, stream frames in, write frames out.

    info = probe(path)                                  # video file or image sequence
    for frame in read_frames(info, first=10, count=31): ...   # one frame at a time
    with open_writer(out, "ffv1", fps=info.fps, size=info.size) as w: w.write(frame)

Video files go through ffmpeg pipes (mp4/mov/mkv; H.264, ProRes, FFV1, anything ffmpeg
decodes); sequences are 8/16-bit PNG or EXR. URIs with a protocol (s3://, memory://...) are
handled with `local_input` / `local_output` (void_engine.io.uri).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from fractions import Fraction

import cv2
import numpy as np

from void_engine.errors import InputError, OutputError
from void_engine.io.pixels import from_float, scale_of, to_uint8
from void_engine.io.prefetch import Prefetch
from void_engine.io.probe import PlateInfo, probe, sequence_files
from void_engine.io.sequence import SequenceWriter, read_image, write_image
from void_engine.io.uri import check_writable, is_local, local_input, local_output
from void_engine.io.video import CODECS as VIDEO_CODECS
from void_engine.io.video import PlateOverlay, VideoWriter, bgra_exact, codec_args, read_video

SEQUENCE_CODECS = ("png", "exr")
ALL_CODECS = (*VIDEO_CODECS, *SEQUENCE_CODECS)

__all__ = [
    "ALL_CODECS", "PlateInfo", "PlateOverlay", "Prefetch", "SequenceWriter", "VideoWriter",
    "bgra_exact", "check_writable", "codec_args",
    "from_float", "is_local", "local_input", "local_output", "open_writer", "output_name",
    "probe", "read_frames", "read_image", "read_video", "scale_of", "sequence_files",
    "to_uint8", "write_image",
]


def read_frames(info: PlateInfo, *, first: int = 0, count: int | None = None,
                size: tuple[int, int] | None = None, uint8: bool = False,
                what: str = "plate", threads: int | None = None) -> Iterator[np.ndarray]:
    """Stream RGB frames first..first+count-1 in the plate's own dtype (or uint8).

    size=(h, w) resizes with area averaging (inside ffmpeg for video files). Video frames
    are uint8 unless the stream is >8-bit, then uint16; PNG uint8/uint16; EXR float32.
    threads caps a video decoder's threads (memory: see read_video).
    """
    count = info.frames - first if count is None else count
    if info.kind == "video":
        dtype = np.uint8 if (uint8 or info.depth == 8) else np.uint16
        yield from read_video(info.path, first=first, count=count, size=size, dtype=dtype,
                              what=what, threads=threads, source_size=info.size)
        return
    for path in info.files[first:first + count]:
        frame = read_image(path)
        if frame.shape[:2] != info.size:
            raise InputError(f"{what} frame {path} is {frame.shape[1]}x{frame.shape[0]}, "
                             f"the sequence is {info.width}x{info.height}")
        if uint8:
            frame = to_uint8(frame)
        if size is not None and tuple(size) != frame.shape[:2]:
            frame = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        yield frame


def output_name(base: str, codec: str) -> str:
    """`base` with the extension `codec` writes (sequences are folders: no extension)."""
    if codec in SEQUENCE_CODECS:
        return base
    return base + VIDEO_CODECS[codec]["ext"]


@contextlib.contextmanager
def open_writer(path: str, codec: str, *, fps: Fraction, size: tuple[int, int],
                dtype=np.uint8, audio: tuple[str, float, float] | None = None,
                audio_codec: str | None = None, start_number: int = 0, channels: int = 3,
                overlay: PlateOverlay | None = None):
    """Context manager yielding a writer (`.write(frame)`); the output appears at `path` only
    when the block finishes without error. Video files carry `audio` through; PNG/EXR
    sequences are written as a folder of frames. overlay (video codecs, 8-bit): the writer
    decodes the plate itself and `.write` takes RGBA patches to blend onto it."""
    if codec not in ALL_CODECS:
        raise OutputError(f"unknown codec {codec!r} (have {', '.join(ALL_CODECS)})")
    check_writable(path)
    with local_output(path) as local:
        if codec in SEQUENCE_CODECS:
            writer = SequenceWriter(local, codec, start_number=start_number)
        else:
            writer = VideoWriter(local, codec, fps=fps, size=size, dtype=dtype, audio=audio,
                                 audio_codec=audio_codec, channels=channels, overlay=overlay)
        try:
            yield writer
        except BaseException:
            writer.abort()
            raise
        writer.close()
