"""Quadmask files, the one home of reading and writing them: quantized reads (video or PNG/EXR
sequence, any fsspec URI through `opened`), lossless writes (FFV1 .mkv or x264 -qp 0 .mp4),
and the stages' single-pass read that also counts levels, plus the matte stream copy.

The rules about the four values (quantize thresholds, wrong-file detection) stay in
void_engine.quadmask; this module only moves mask frames between files and arrays, and
decides how few times a 4K mask has to be decoded and encoded.
"""
from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from fractions import Fraction

import cv2
import numpy as np

from void_engine import quadmask as qm
from void_engine.errors import InputError, OutputError
from void_engine.io.atomic import AtomicPath, describe_tool_message
from void_engine.io.codecs import MASK_CODEC_BY_EXT
from void_engine.io.commands import grey_conversion_command, stream_copy_command
from void_engine.io.probe import PlateInfo, probe
from void_engine.io.uri import local_input
from void_engine.io.video import progress_frames, read_video

Box = tuple[int, int, int, int]
_LEVELS = np.arange(256, dtype=np.uint8)
_QUANTIZE = qm.quantize(_LEVELS)  # the quadmask's own thresholds as a lookup table
# Grey levels far from all four values: only a frame holding some can fail check_levels.
_FAR = np.array([min(abs(v - q) for q in qm.VALUES) > qm.FAR_LEVELS for v in range(256)])
_EXACT = np.isin(_LEVELS, qm.VALUES)


# --- reading ------------------------------------------------------------------------------
@contextlib.contextmanager
def opened(uri: str, what: str = "quadmask") -> Iterator[PlateInfo]:
    """Probe `uri` (any fsspec URI) and keep its local copy alive inside the block."""
    with local_input(uri, what=what) as local:
        yield probe(local, what=what)


def read_quadmask(path: str, *, first: int = 0, count: int | None = None,
                  size: tuple[int, int] | None = None, strict: bool = True,
                  what: str = "quadmask") -> Iterator[np.ndarray]:
    """Stream quantized quadmask frames (uint8 (H, W), only the four values) from a local
    video file or PNG/EXR sequence, as players show them (display rotation applied).

    Videos are decoded as grey (the luma plane as stored, so lossless masks come back exact
    and lossy ones snap back via quantize). size=(h, w) resizes with nearest neighbour (a mask
    drawn at proxy resolution). strict=True refuses frames that are not a quadmask at all.
    """
    info = probe(path, what=what)
    count = info.frames - first if count is None else count
    if info.kind == "video":
        raw_frames = read_video(info.path, first=first, count=count, size=size, channels=1,
                                scale_flags="neighbor", what=what, source_size=info.size)
    else:
        raw_frames = _sequence_levels(info.files[first:first + count], size)
    for i, raw in enumerate(raw_frames):
        if strict:
            qm.check_levels(raw, frame_index=first + i, what=what)
        yield _QUANTIZE[raw]


def read_mask(info: PlateInfo, *, first: int = 0, count: int | None = None,
              size: tuple[int, int] | None = None, what: str = "mask") -> Iterator[np.ndarray]:
    """read_quadmask of an `opened` file (black and grey masks are quadmask frames that use
    a subset of the values)."""
    yield from read_quadmask(info.path, first=first, count=count, size=size, what=what)


def _sequence_levels(files: list[str], size) -> Iterator[np.ndarray]:
    from void_engine.io.sequence import read_image

    for f in files:
        img = read_image(f)[..., 0]
        if img.dtype != np.uint8:
            img = qm.quantize(img.astype(np.float32) / (65535.0 if img.dtype == np.uint16
                                                         else 1.0))
        if size is not None and img.shape != tuple(size):
            img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        yield img


def level_histogram(frame: np.ndarray) -> np.ndarray:
    """int64 counts of the 256 grey levels of a uint8 (H, W) frame (OpenCV: ~10x bincount)."""
    hist = cv2.calcHist([np.ascontiguousarray(frame)], [0], None, [256], [0, 256])
    return hist.ravel().astype(np.int64)


def quantized_frames(info: PlateInfo, *, first: int, count: int,
                     size: tuple[int, int] | None, what: str = "quadmask",
                     ) -> Iterator[tuple[np.ndarray, np.ndarray, Box | None]]:
    """Like read_quadmask(strict=True), yielding (quantized frame, raw level histogram, box)
    so callers can count values and tell an exact file from a lossy one without another
    pass over 4K pixels. Every pixel outside `box` (y0, y1, x0, x1) is KEEP (None: all of
    them), so per-frame work can stay inside it."""
    if info.kind != "video":
        for q in read_quadmask(info.path, first=first, count=count, size=size, what=what):
            yield q, level_histogram(q), qm.bounding_box(q)
        return
    plane, to_full = luma_route(info, size)
    raw_frames = read_video(info.path, first=first, count=count, size=size, channels=1,
                            scale_flags="neighbor", what=what, threads=2,
                            source_size=info.size, luma_plane=plane)
    for i, raw in enumerate(raw_frames):
        if to_full is not None:  # the grey levels ffmpeg's own conversion would give
            cv2.LUT(raw, to_full, dst=raw)
        box = qm.bounding_box(raw)  # outside it every raw level is exactly KEEP
        hist = np.zeros(256, np.int64)
        hist[qm.KEEP] = raw.size
        if box is not None:
            crop = raw[box[0]:box[1], box[2]:box[3]]
            hist += level_histogram(crop)
            hist[qm.KEEP] -= crop.size
            if hist[_FAR].any():  # let the quadmask module judge (and word) a doubtful frame
                qm.check_levels(raw, frame_index=first + i, what=what)
            if hist[~_EXACT].any():  # lossy: quantize (inside the box: outside is KEEP)
                crop[...] = cv2.LUT(crop, _QUANTIZE)
        yield raw, hist, box


# 8-bit formats whose Y plane ffmpeg's grey output is made of (RGB and >8-bit go through
# ffmpeg's conversion as before).
_LUMA_FORMATS = {"yuv420p", "yuv422p", "yuv444p", "yuv440p", "yuv411p", "yuv410p", "gray"}


def luma_route(info: PlateInfo, size) -> tuple[bool, np.ndarray | None]:
    """Whether to read the stored Y plane (no resize, 8-bit YUV/grey), and the level map
    that turns a limited-range plane into the grey levels ffmpeg would have converted it
    to (None: the plane already is them)."""
    if size is not None or info.pix_fmt not in _LUMA_FORMATS:
        return False, None
    if info.pix_fmt == "gray" or info.color_range == "pc":
        return True, None
    lut = limited_to_full_levels()
    return lut is not None, lut


@functools.lru_cache(maxsize=1)
def limited_to_full_levels() -> np.ndarray | None:
    """ffmpeg's own limited -> full range grey mapping, one entry per level, asked of
    ffmpeg once per process (a 256-level ramp through the very conversion read_video(gray)
    uses; the mapping is per level, not per position). None if ffmpeg will not say."""
    ramp = np.concatenate([np.tile(_LEVELS, 2), np.full(2 * 2 * 256, 128, np.uint8)])
    proc = subprocess.run(grey_conversion_command("yuv444p", (2, 256)),
                          input=ramp.tobytes(), capture_output=True)
    out = np.frombuffer(proc.stdout, np.uint8)
    if proc.returncode != 0 or out.size != 512 or not np.array_equal(out[:256], out[256:]):
        return None
    return out[:256].copy()


def quantized_counts(raw_counts: np.ndarray) -> dict[int, int]:
    """Pixel count per quadmask value from a raw level histogram."""
    counts = np.bincount(_QUANTIZE, weights=raw_counts, minlength=256)
    return {v: int(counts[v]) for v in qm.VALUES}


def holds_exact_values(raw_counts: np.ndarray) -> bool:
    """True when every decoded level was already one of the four (nothing to quantize)."""
    return not raw_counts[~_EXACT].any()


# --- writing ------------------------------------------------------------------------------
def open_quadmask_writer(path: str, *, fps, size: tuple[int, int],
                         timestamps: list[int] | None = None,
                         time_base: Fraction | None = None):
    """Lossless grey writer for quadmask frames: FFV1 .mkv (default) or x264 -qp 0 yuv444p
    .mp4 by extension. A context manager, like void_engine.io.open_writer; timestamps (with
    time_base) give a variable-rate plate's matte the plate's frame times."""
    from void_engine.io import open_writer

    codec = MASK_CODEC_BY_EXT.get(os.path.splitext(str(path))[1].lower(), "ffv1")
    return open_writer(path, codec, fps=Fraction(fps).limit_denominator(100000), size=size,
                       channels=1, timestamps=timestamps, time_base=time_base)


def write_quadmask(path: str, frames: Iterable[np.ndarray], *, fps=12) -> str:
    """Write quadmask frames losslessly (values quantized first). Returns the path."""
    it = iter(frames)
    first = qm.quantize(next(it))
    with open_quadmask_writer(path, fps=fps, size=first.shape) as writer:
        writer.write(first)
        for frame in it:
            writer.write(qm.quantize(frame))
    return str(path)


def write_mask(uri: str, frames: Iterable[np.ndarray], *, fps: Fraction | float,
               size: tuple[int, int]) -> str:
    """Write (H, W) uint8 mask frames exactly as given (no quantizing: a wrong frame is an
    error) to a .mp4/.mkv `uri`; the file appears only when complete."""
    ext = os.path.splitext(str(uri))[1].lower()
    if ext not in MASK_CODEC_BY_EXT:
        raise InputError(f"mask output {uri}: use .mp4 (lossless H.264) or .mkv (FFV1)")
    with open_quadmask_writer(str(uri), fps=fps, size=tuple(size)) as writer:
        for i, frame in enumerate(frames):
            if frame.shape != tuple(size) or frame.dtype != np.uint8:
                raise InputError(f"mask frame {i} is {frame.dtype} {frame.shape}, expected "
                                 f"uint8 {tuple(size)}")
            writer.write(np.ascontiguousarray(frame))
    return str(uri)


def may_stream_copy(mask: PlateInfo, plate: PlateInfo, first: int, count: int,
                    size: tuple[int, int] | None) -> bool:
    """Whether the mask file itself can be the matte, if its decoded levels turn out to be
    exactly the four: an upright video covering exactly the shot's frames at plate size and
    constant rate, in a codec that can be lossless (FFV1; H.264 High 4:4:4 Predictive, x264
    -qp 0) and whose decoders are bit-exact by specification."""
    lossless_capable = mask.codec == "ffv1" or (
        mask.codec == "h264" and "4:4:4" in mask.profile)
    return (mask.kind == "video" and lossless_capable and size is None and first == 0
            and mask.frames == count and mask.fps == plate.fps and not mask.rotation
            and not mask.variable_rate and not plate.variable_rate)


def copy_matte(src: str, dst: str, *, frames: int) -> str:
    """Copy the video stream of `src` into a Matroska file `dst` without re-encoding
    (written atomically); OutputError unless exactly `frames` frames came through."""
    with tempfile.TemporaryDirectory(prefix="void-copy-") as scratch, \
            AtomicPath(dst, what="matte") as tmp:
        progress = os.path.join(scratch, "progress.txt")
        proc = subprocess.run(stream_copy_command(src, tmp, progress=progress),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["ffmpeg failed"])[-1]
            raise OutputError(f"cannot write matte {dst}: {describe_tool_message(last.strip())}")
        if progress_frames(progress) != frames:
            raise OutputError(f"cannot write matte {dst}: stream copy lost frames")
    return dst
