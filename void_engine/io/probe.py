"""What a plate is: video file or image sequence, size, fps, frame count, bit depth, audio,
and the side data that changes what players show: display-matrix rotation, pixel aspect,
field order, variable frame rate (policy in docs/io.md)."""
from __future__ import annotations

import dataclasses
import glob
import os
import re
import threading
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from void_engine.errors import InputError
from void_engine.io.commands import ffprobe, packets_probe

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
    # width/height are as displayed; the coded picture is turned by `rotation` degrees
    # counter-clockwise (0/90/180/270, from the display matrix) and ffmpeg's decode applies it.
    rotation: int = 0
    sar: Fraction = Fraction(1)  # pixel aspect ratio of the displayed picture
    field_order: str = ""  # ffprobe's word: progressive, tt/bb/tb/bt (interlaced), "" unknown
    # Variable frame rate only: each frame's presentation time in time_base units, from the
    # first frame (0), in display order; None for a constant rate (frame n at n/fps).
    timestamps: tuple[int, ...] | None = None
    time_base: Fraction | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return (self.height, self.width)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype({8: np.uint8, 16: np.uint16, 32: np.float32}[self.depth])

    @property
    def variable_rate(self) -> bool:
        return self.timestamps is not None

    @property
    def interlaced(self) -> bool:
        return self.field_order in INTERLACED

    def display_notes(self) -> list[str]:
        """Short notes of the side data that shapes the displayed picture (for the report)."""
        notes = []
        if self.rotation:
            notes.append(f"display matrix turns it {self.rotation}° counter-clockwise: read "
                         f"as displayed, {self.width}x{self.height}")
        if self.sar != 1:
            notes.append(f"non-square pixels (SAR {self.sar.numerator}:{self.sar.denominator})")
        if self.variable_rate:
            notes.append(f"variable frame rate ({self.frames} frames, average "
                         f"{float(self.fps):.3f} fps)")
        return notes

    def check_progressive(self, what: str = "plate") -> None:
        """Refuse interlaced pictures: frames would be resized and inpainted as if both
        fields were one instant, combing the change region (see docs/io.md)."""
        if self.interlaced:
            order = {"tt": "top field first", "bb": "bottom field first",
                     "tb": "top field first, bottom displayed first",
                     "bt": "bottom field first, top displayed first"}[self.field_order]
            raise InputError(f"{what} {self.path} is interlaced ({order}): deinterlace it "
                             "first (e.g. ffmpeg -vf bwdif=mode=send_frame) and give that "
                             "plate and its quadmask")


INTERLACED = ("tt", "bb", "tb", "bt")


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
        info = ffprobe(path)
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
    packets = packets_probe(path)  # a demux (no decode): frame count and timestamps
    frames = int(video.get("nb_frames") or 0) or len(packets.get("packets") or [])
    if frames <= 0 or rate <= 0 or not video.get("width"):
        raise InputError(f"{what} {path} is not a readable video (no frames)")
    timing = _variable_timing(packets, rate, frames)
    if timing is not None:  # the average is the honest single number for a VFR plate
        average = Fraction(video.get("avg_frame_rate") or "0/1")
        rate = average if average > 0 else rate
    rotation = _rotation(video, what, path)
    width, height = int(video["width"]), int(video["height"])
    sar = _sar(video)
    if rotation in (90, 270):  # ffmpeg's autorotate transposes the picture (and its SAR)
        width, height, sar = height, width, 1 / sar
    pix_fmt = video.get("pix_fmt", "")
    return PlateInfo(path=path, kind="video", width=width, height=height, frames=frames,
                     fps=rate, depth=_depth_of(pix_fmt), codec=video.get("codec_name", ""),
                     pix_fmt=pix_fmt, profile=video.get("profile", ""),
                     audio_codec=audio.get("codec_name") if audio else None,
                     color_range=video.get("color_range", "").replace("unknown", ""),
                     rotation=rotation, sar=sar,
                     field_order=video.get("field_order", "").replace("unknown", ""),
                     timestamps=timing[1] if timing else None,
                     time_base=timing[0] if timing else None)


def _sar(video: dict) -> Fraction:
    num, _, den = (video.get("sample_aspect_ratio") or "1:1").partition(":")
    try:
        sar = Fraction(int(num), int(den or 1))
    except (ValueError, ZeroDivisionError):
        return Fraction(1)
    return sar if sar > 0 else Fraction(1)  # 0:1 means unknown: square


def _rotation(video: dict, what: str, path: str) -> int:
    """Counter-clockwise degrees the display matrix turns the picture. Refuses matrices that
    mirror it or turn it by other angles (ffmpeg's autorotate would not show it as players
    do)."""
    for side in video.get("side_data_list") or []:
        if side.get("side_data_type") != "Display Matrix":
            continue
        rows = [line.split(":", 1)[1].split() for line in
                side.get("displaymatrix", "").strip().splitlines() if ":" in line]
        m = [int(v) for row in rows for v in row]
        angle = float(side.get("rotation", 0.0))
        if len(m) == 9 and m[0] * m[4] - m[1] * m[3] < 0:
            raise InputError(f"{what} {path} has a mirroring display matrix: re-export it as "
                             "displayed (e.g. ffmpeg -i PLATE -vf hflip ...) first")
        if abs(angle - 90 * round(angle / 90)) > 0.5:
            raise InputError(f"{what} {path} is displayed rotated by {angle:g}°, not a "
                             "multiple of 90°: re-export it as displayed first")
        return int(90 * round(angle / 90)) % 360
    return 0


def _variable_timing(packets: dict, rate: Fraction, frames: int):
    """(time_base, per-frame timestamps from 0) when the frames are not evenly spaced at
    `rate`, else None. Even means every frame within one time-base tick of first + n/rate
    (containers such as Matroska round to their 1 ms tick). Without a timestamp per frame
    (raw streams, or an edit list hiding packets) the stream is taken as constant-rate:
    there is no other timing to keep."""
    base = ((packets.get("streams") or [{}])[0]).get("time_base")
    pts = sorted(int(p["pts"]) for p in packets.get("packets") or []
                 if isinstance(p.get("pts"), int) and "D" not in p.get("flags", ""))
    if not base or len(pts) != frames or frames < 2:
        return None
    tb = Fraction(base)
    rel = np.asarray(pts, np.float64) - pts[0]
    even = np.arange(frames, dtype=np.float64) / float(rate * tb)
    if np.abs(rel - even).max() <= 1.0:
        return None
    return tb, tuple(int(v) - pts[0] for v in pts)


def _probe_sequence(path: str, files: list[str], what: str, fps) -> PlateInfo:
    from void_engine.io.sequence import read_image

    _check_readable(files[0], what)
    first = read_image(files[0])
    depth = 32 if first.dtype == np.float32 else (16 if first.dtype == np.uint16 else 8)
    rate = Fraction(fps).limit_denominator(1001) if fps else DEFAULT_SEQUENCE_FPS
    ext = os.path.splitext(files[0])[1].lower().lstrip(".")
    return PlateInfo(path=path, kind="sequence", width=first.shape[1], height=first.shape[0],
                     frames=len(files), fps=rate, depth=depth, codec=ext, files=files)


