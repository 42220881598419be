"""What a plate is: video file or image sequence, size, fps, frame count, bit depth, audio."""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import subprocess
import threading
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from void_engine.errors import InputError

SEQUENCE_EXTS = (".png", ".exr")
DEFAULT_SEQUENCE_FPS = Fraction(24)


@dataclass
class PlateInfo:
    path: str  # local path: a video file, or the folder/pattern of a sequence
    kind: str  # "video" | "sequence"
    width: int
    height: int
    frames: int
    fps: Fraction
    depth: int = 8  # 8 or 16 (integer) or 32 (float EXR): the dtype frames are read as
    codec: str = ""
    pix_fmt: str = ""
    profile: str = ""  # e.g. "High 4:4:4 Predictive" (the only lossless-capable H.264)
    audio_codec: str | None = None  # first audio stream, video files only
    color_range: str = ""  # "tv" (limited), "pc" (full) or "" (unknown: YUV is taken as tv)
    files: list[str] = field(default_factory=list)  # sequence frames in order

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return (self.height, self.width)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype({8: np.uint8, 16: np.uint16, 32: np.float32}[self.depth])


def ffprobe_json(path: str, *args: str) -> dict:
    cmd = ["ffprobe", "-v", "error", "-of", "json", *args, path]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["ffprobe failed"])[-1]
        raise InputError(f"{path} is not a readable video ({last.strip()})")
    return json.loads(proc.stdout or "{}")


def _depth_of(pix_fmt: str) -> int:
    return 16 if re.search(r"(9|10|12|14|16)(le|be)?$", pix_fmt) or pix_fmt.startswith(
        ("rgb48", "rgba64", "bgr48", "bgra64")) else 8


def _check_readable(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise InputError(f"{what} not found: {path}")
    if not os.access(path, os.R_OK):
        raise InputError(f"cannot read {what} {path}: permission denied")


def sequence_files(path: str) -> list[str]:
    """Frames of an image sequence given as a folder, a printf pattern (%04d) or #### pattern,
    sorted by frame number. Empty list when `path` names no sequence."""
    if os.path.isdir(path):
        files = [os.path.join(path, f) for f in os.listdir(path)
                 if f.lower().endswith(SEQUENCE_EXTS) and not f.startswith(".")]
    elif "%" in path or "#" in path:
        pattern = re.sub(r"%0?\d*d", "*", path)
        pattern = re.sub(r"#+", "*", pattern)
        files = glob.glob(pattern)
    else:
        return []
    exts = {os.path.splitext(f)[1].lower() for f in files}
    if len(exts) > 1:
        raise InputError(f"sequence {path} mixes {sorted(exts)} frames")

    def frame_number(name: str) -> tuple[int, str]:
        digits = re.findall(r"\d+", os.path.basename(name))
        return (int(digits[-1]) if digits else -1, name)

    return sorted(files, key=frame_number)


def probe(path: str, *, what: str = "plate", fps: float | Fraction | None = None) -> PlateInfo:
    """Probe a local video file or image sequence. Raises InputError for missing, unreadable
    or corrupt input. `fps` sets a sequence's rate (sequences carry none; default 24)."""
    files = sequence_files(path)
    if files or os.path.isdir(path):
        if not files:
            raise InputError(f"{what} folder {path} holds no .png/.exr frames")
        return _probe_sequence(path, files, what, fps)
    _check_readable(path, what)
    if os.path.splitext(path)[1].lower() in SEQUENCE_EXTS:  # a single still
        return _probe_sequence(path, [path], what, fps)
    # The stages probe the same plate more than once per shot (decode, then encode): a file
    # whose identity, size and mtime are unchanged is not asked of ffprobe again.
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns)
    with _CACHE_LOCK:
        known = _CACHE.get(key)
    if known is not None:
        return dataclasses.replace(known, path=path)
    info = _probe_video(path, what)
    with _CACHE_LOCK:
        _CACHE[key] = info
        while len(_CACHE) > 256:
            _CACHE.pop(next(iter(_CACHE)))
    return dataclasses.replace(info, path=path)


_CACHE: dict[tuple, PlateInfo] = {}
_CACHE_LOCK = threading.Lock()


def _probe_video(path: str, what: str) -> PlateInfo:
    try:
        info = ffprobe_json(path, "-show_streams", "-show_format")
    except InputError as exc:
        raise InputError(f"{what} {exc.problem}") from None
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not s.get("disposition", {}).get("attached_pic")), None)
    if video is None:
        raise InputError(f"{what} {path} is not a readable video (no video stream)")
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    rate = Fraction(video.get("r_frame_rate") or "0/1")
    if rate <= 0:
        rate = Fraction(video.get("avg_frame_rate") or "0/1")
    frames = int(video.get("nb_frames") or 0)
    if frames <= 0:  # mkv and some mov: count packets (no decode)
        counted = ffprobe_json(path, "-count_packets", "-select_streams", "v:0",
                               "-show_entries", "stream=nb_read_packets")
        frames = int((counted.get("streams") or [{}])[0].get("nb_read_packets") or 0)
    if frames <= 0 or rate <= 0 or not video.get("width"):
        raise InputError(f"{what} {path} is not a readable video (no frames)")
    pix_fmt = video.get("pix_fmt", "")
    return PlateInfo(path=path, kind="video", width=int(video["width"]),
                     height=int(video["height"]), frames=frames, fps=rate,
                     depth=_depth_of(pix_fmt), codec=video.get("codec_name", ""),
                     pix_fmt=pix_fmt, profile=video.get("profile", ""),
                     audio_codec=audio.get("codec_name") if audio else None,
                     color_range=video.get("color_range", "").replace("unknown", ""))


def _probe_sequence(path: str, files: list[str], what: str, fps) -> PlateInfo:
    from void_engine.io.sequence import read_image

    _check_readable(files[0], what)
    first = read_image(files[0])
    depth = 32 if first.dtype == np.float32 else (16 if first.dtype == np.uint16 else 8)
    rate = Fraction(fps).limit_denominator(1001) if fps else DEFAULT_SEQUENCE_FPS
    ext = os.path.splitext(files[0])[1].lower().lstrip(".")
    return PlateInfo(path=path, kind="sequence", width=first.shape[1], height=first.shape[0],
                     frames=len(files), fps=rate, depth=depth, codec=ext, files=files)


