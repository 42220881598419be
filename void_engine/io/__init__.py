"""Plate IO: probe, stream frames in, write frames out.

    info = probe(path)                                  # video file or image sequence
    for frame in read_frames(info, first=10, count=31): ...   # one frame at a time
    with open_writer(out, "ffv1", fps=info.fps, size=info.size) as w: w.write(frame)

Video files go through ffmpeg pipes (mp4/mov/mkv; H.264, ProRes, FFV1, anything ffmpeg
decodes; the commands are built in io.commands); sequences are 8/16-bit PNG or EXR. Frames
are as players show them (display rotation applied). Remote inputs come through `local_input`
(io.uri); every output is written atomically (io.atomic), local or fsspec URI. Codecs: io.codecs.
Policy on rotation, pixel aspect, field order and variable frame rate: docs/io.md.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from fractions import Fraction

import cv2
import numpy as np

from void_engine.errors import InputError, OutputError
from void_engine.io.atomic import describe_os_error, is_write_error
from void_engine.io.codecs import (
    ALL_CODECS,
    SEQUENCE_CODECS,
    VIDEO_CODECS,
    check_codec,
    codec_args,
    codec_for_path,
    output_name,
)
from void_engine.io.commands import PlateOverlay
from void_engine.io.pixels import from_float, scale_of, to_uint8
from void_engine.io.prefetch import Prefetch
from void_engine.io.probe import PlateInfo, probe, sequence_files
from void_engine.io.sequence import SequenceWriter, read_image, write_image
from void_engine.io.uri import check_writable, is_local, local_input
from void_engine.io.video import read_video
from void_engine.io.writer import VideoWriter, bgra_exact

__all__ = [
    "ALL_CODECS", "PlateInfo", "PlateOverlay", "Prefetch", "SEQUENCE_CODECS", "SequenceWriter",
    "VIDEO_CODECS", "VideoWriter", "bgra_exact", "check_codec", "check_writable", "codec_args",
    "codec_for_path", "frame_timing", "from_float", "is_local", "local_input", "open_writer",
    "output_name", "probe", "read_frames", "read_image", "read_video", "scale_of", "sequence_files",
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


def frame_timing(info: PlateInfo, first: int, count: int) -> dict:
    """open_writer's timing arguments for frames first..first+count-1 of `info`: {} at a
    constant rate, else their own timestamps (from the range's first frame) and time base."""
    if not info.variable_rate:
        return {}
    span = info.timestamps[first:first + count]
    return {"timestamps": [t - span[0] for t in span], "time_base": info.time_base}


@contextlib.contextmanager
def open_writer(path: str, codec: str, *, fps: Fraction, size: tuple[int, int],
                dtype=np.uint8, audio: tuple[str, float, float] | None = None,
                audio_codec: str | None = None, start_number: int = 0, channels: int = 3,
                overlay: PlateOverlay | None = None, sar: Fraction | None = None,
                timestamps: list[int] | None = None, time_base: Fraction | None = None,
                on_tap=None):
    """Context manager yielding a writer (`.write(frame)`); the output appears at `path`
    (local or fsspec URI) only when the block finishes without error. Video files carry
    `audio` through; PNG/EXR sequences are written as a folder of frames. overlay (video
    codecs, 8-bit): the writer decodes the plate itself and `.write` takes RGBA patches to
    blend onto it. sar: pixel aspect to record (video, EXR). timestamps + time_base: each
    frame's presentation time (video codecs; variable-rate plates). on_tap: the consumer
    of an overlay's tap window (VideoWriter)."""
    check_codec(codec)
    check_writable(path)
    if codec in SEQUENCE_CODECS:
        if timestamps is not None:
            raise OutputError(f"cannot write {path}: {codec} sequences have no per-frame "
                              "timestamps")
        writer = SequenceWriter(path, codec, start_number=start_number, sar=sar)
    else:
        writer = VideoWriter(path, codec, fps=fps, size=size, dtype=dtype, audio=audio,
                             audio_codec=audio_codec, channels=channels, overlay=overlay,
                             sar=sar, timestamps=timestamps, time_base=time_base,
                             on_tap=on_tap)
    try:
        yield writer
    except BaseException as exc:
        writer.abort()
        if is_write_error(exc):  # the filesystem refused a frame: say so, naming the output
            raise OutputError(f"cannot write {path}: {describe_os_error(exc)}") from None
        raise
    writer.close()
