"""Plate-size quadmask streams for the stages: one decode of the mask gives the quantized
frames, the raw level histogram (does the file already hold exactly the four values?) and,
when it does and its codec is lossless, the matte as a stream copy instead of a re-encode.

The rules about the four values stay in void_engine.quadmask; this module only decides how
few times a 4K mask has to be decoded and encoded.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import cv2
import numpy as np

from void_engine import quadmask as qm
from void_engine.errors import OutputError
from void_engine.io.probe import PlateInfo
from void_engine.io.uri import local_output, make_public
from void_engine.io.video import progress_frames, read_video

_LEVELS = np.arange(256, dtype=np.uint8)
_QUANTIZE = qm.quantize(_LEVELS)  # the quadmask's own thresholds as a lookup table
# Grey levels far from all four values: only a frame holding some can fail check_levels.
_FAR = np.array([min(abs(v - q) for q in qm.VALUES) > qm.FAR_LEVELS for v in range(256)])
_EXACT = np.isin(_LEVELS, qm.VALUES)


def level_histogram(frame: np.ndarray) -> np.ndarray:
    """int64 counts of the 256 grey levels of a uint8 (H, W) frame (OpenCV: ~10x bincount)."""
    hist = cv2.calcHist([np.ascontiguousarray(frame)], [0], None, [256], [0, 256])
    return hist.ravel().astype(np.int64)


Box = tuple[int, int, int, int]


def quantized_frames(info: PlateInfo, *, first: int, count: int,
                     size: tuple[int, int] | None, what: str = "quadmask",
                     ) -> Iterator[tuple[np.ndarray, np.ndarray, Box | None]]:
    """Like quadmask.read_quadmask(strict=True), yielding (quantized frame, raw level
    histogram, box) so callers can count values and tell an exact file from a lossy one
    without another pass over 4K pixels. Every pixel outside `box` (y0, y1, x0, x1) is KEEP
    (None: all of them), so per-frame work can stay inside it."""
    if info.kind != "video":
        for q in qm.read_quadmask(info.path, first=first, count=count, size=size, what=what):
            yield q, level_histogram(q), qm.bounding_box(q)
        return
    plane, to_full = _luma_route(info, size)
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


def _luma_route(info: PlateInfo, size) -> tuple[bool, np.ndarray | None]:
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
    proc = subprocess.run(["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv444p",
                           "-s", "256x2", "-i", "-", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
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


def may_stream_copy(mask: PlateInfo, plate: PlateInfo, first: int, count: int,
                    size: tuple[int, int] | None) -> bool:
    """Whether the mask file itself can be the matte, if its decoded levels turn out to be
    exactly the four: a video covering exactly the shot's frames at plate size and rate, in
    a codec that can be lossless (FFV1; H.264 High 4:4:4 Predictive, x264 -qp 0) and whose
    decoders are bit-exact by specification."""
    lossless_capable = mask.codec == "ffv1" or (
        mask.codec == "h264" and "4:4:4" in mask.profile)
    return (mask.kind == "video" and lossless_capable and size is None and first == 0
            and mask.frames == count and mask.fps == plate.fps)


def stream_copy(src: str, dst: str, *, frames: int) -> str:
    """Copy the video stream of `src` into a Matroska file `dst` without re-encoding
    (written to a temp name, then renamed)."""
    folder = os.path.dirname(os.path.abspath(dst))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dst)}.part-", suffix=".mkv",
                               dir=folder)
    os.close(fd)
    progress = tmp + ".progress"
    try:
        proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", src, "-map",
                               "0:v:0", "-c", "copy", "-f", "matroska", "-progress", progress,
                               tmp], capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["ffmpeg failed"])[-1]
            raise OutputError(f"cannot write matte {dst}: {last.strip()}")
        if progress_frames(progress) != frames:
            raise OutputError(f"cannot write matte {dst}: stream copy lost frames")
        make_public(tmp)
        os.replace(tmp, dst)
    finally:
        for path in (tmp, progress):
            if os.path.exists(path):
                os.remove(path)
    return dst


def deliver_file(src: str, uri: str) -> str:
    """Copy a finished local file to `uri` (local or fsspec), under a temp name first."""
    with local_output(uri) as local:
        folder = os.path.dirname(os.path.abspath(local))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(local)}.part-", dir=folder)
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            make_public(tmp)
            os.replace(tmp, local)
        except OSError as exc:
            raise OutputError(f"cannot write {uri}: {exc}") from None
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return uri

