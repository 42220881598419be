"""Every ffmpeg and ffprobe command of void_engine.io, built in this one place with
ffmpeg-python (streams, filter graphs, options), so the readers and writers only run them.

Frames always travel as raw pixels over pipes (the streaming design: a 4K plate is never held
whole in memory); what the commands say about them:

- decode: the first video stream, frames first..first+count-1 (`trim` by frame index, so
  variable-rate plates are cut exactly), scaled inside ffmpeg when asked, one output frame per
  decoded frame (`-fps_mode passthrough`: no frame is duplicated or dropped). Display-matrix
  rotation is applied by ffmpeg's autorotate (on by default), so frames come out as players
  show them.
- encode: raw frames from stdin at a constant rate (frame n at n/fps), or, for variable-rate
  plates, a NUT stream whose frames carry their own timestamps (kept: passthrough and the
  input's time base); optionally composited onto the plate inside ffmpeg (PlateOverlay); audio
  carried from the plate.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction

import ffmpeg

from void_engine.errors import InputError
from void_engine.io.codecs import AUDIO_COPY, VIDEO_CODECS, encoder_options

QUIET = ("-nostdin", "-v", "error")


def ffprobe(path: str, **options) -> dict:
    """ffprobe's JSON (streams and format, plus `options`, e.g. show_entries). InputError
    with ffprobe's last message when it cannot read the file."""
    try:
        return ffmpeg.probe(path, v="error", **options)
    except ffmpeg.Error as exc:
        lines = exc.stderr.decode(errors="replace").strip().splitlines() or ["ffprobe failed"]
        raise InputError(f"{path} is not a readable video ({lines[-1].strip()})") from None
    except json.JSONDecodeError:
        raise InputError(f"{path} is not a readable video (ffprobe gave no answer)") from None


def packets_probe(path: str) -> dict:
    """The first video stream's packets (timestamps, flags): a demux, no decode."""
    return ffprobe(path, select_streams="v:0", show_entries="packet=pts,flags")


def decode_command(path: str, *, pix_fmt: str, first: int = 0, count: int | None = None,
                   size: tuple[int, int] | None = None, scale_flags: str = "area",
                   luma_plane: bool = False, threads: int | None = None) -> list[str]:
    """Raw frames of `path`'s first video stream on stdout (see the module docstring)."""
    video = ffmpeg.input(path, **({"threads": threads} if threads else {}))["v:0"]
    if first or count is not None:
        cut = {"start_frame": first} | ({} if count is None else {"end_frame": first + count})
        video = video.trim(**cut).setpts("PTS-STARTPTS")
    if size is not None:
        video = video.filter("scale", size[1], size[0], flags=scale_flags)
    if luma_plane:  # the stored Y plane, untouched (see read_video)
        video = video.filter("extractplanes", "y")
    out = ffmpeg.output(video, "pipe:", format="rawvideo", pix_fmt=pix_fmt,
                        fps_mode="passthrough")
    return out.global_args(*QUIET).compile()


@dataclass(frozen=True)
class PlateOverlay:
    """Composite inside the encoder: the writer decodes `path` frames first..first+count-1
    itself and alpha-blends each written RGBA patch onto its frame at (y, x). The plate's
    full-size frames never cross a pipe; where a patch's alpha is 0 the output is the plate
    as read_video decodes it (rgb24), bit for bit."""

    path: str
    first: int
    count: int
    y: int
    x: int
    size: tuple[int, int]  # (height, width) of every patch
    threads: int = 2  # decoder threads: frame threads buffer whole 4K frames each
    # Blend in BGRA (patches are then BGRA too): the plate converts to it as cheaply as to
    # an encoder's bgr0, where rgb24 costs the 4K frame another conversion (~5% of an FFV1
    # transcode). Only for plates whose BGRA decode equals their RGB decode (bgra_exact).
    bgra: bool = False
    # (y0, y1, x0, x1): also send this window of every frame, the plate's pixels beside the
    # composited ones (rgb24, (h, 2w): plate left, result right), to a pipe (VideoWriter.tap),
    # so QC sees exactly what is encoded without a second 4K decode.
    tap: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class Timing:
    """How written frames are timed: a constant `fps` (frame n at n/fps), or, when
    `time_base` is set, each frame's own timestamp (in time_base units, carried in the NUT
    stream the writer feeds)."""

    fps: Fraction
    time_base: Fraction | None = None

    @property
    def variable(self) -> bool:
        return self.time_base is not None


@dataclass(frozen=True)
class AudioSource:
    """The plate's first audio stream: all of it (duration None: a stream copy where the
    container takes the codec) or a span cut sample-accurately and encoded as AAC."""

    path: str
    start: float
    duration: float | None
    codec: str | None = None


def _rational(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def _frames_in(pix_fmt: str, size: tuple[int, int], timing: Timing):
    if timing.variable:  # NUT: the frames' own timestamps and size travel in the stream
        return ffmpeg.input("pipe:", format="nut")["v:0"]
    return ffmpeg.input("pipe:", format="rawvideo", pix_fmt=pix_fmt,
                        s=f"{size[1]}x{size[0]}", framerate=_rational(timing.fps))["v:0"]


def _over_plate(patches, overlay: PlateOverlay, timing: Timing):
    # Both streams get one time base and matching timestamps, so plate frame n meets patch n
    # exactly: n itself at a constant rate (rounding n/fps into a millisecond time base pairs
    # frames wrongly), the plate's own timestamps from the range start when variable.
    if timing.variable:
        tb, pts = _rational(timing.time_base), "PTS-STARTPTS"
    else:
        tb, pts = _rational(1 / timing.fps), "N"
    plate = ffmpeg.input(overlay.path, threads=overlay.threads)["v:0"]
    plate = (plate.trim(start_frame=overlay.first, end_frame=overlay.first + overlay.count)
             .filter("settb", tb).setpts(pts)
             .filter("format", "bgra" if overlay.bgra else "rgb24"))
    patches = patches.filter("settb", tb)
    if not timing.variable:
        patches = patches.setpts(pts)
    tapped = None
    if overlay.tap is not None:
        split = plate.split()
        plate, tapped = split[0], split[1]
    out = ffmpeg.overlay(plate, patches, x=overlay.x, y=overlay.y, format="rgb",
                         eof_action="endall", shortest=1)
    if tapped is None:
        return out, None
    split = out.split()
    out, done = split[0], split[1]
    y0, y1, x0, x1 = overlay.tap
    window = (x0, y0, x1 - x0, y1 - y0)
    # rgb24 per side before hstack: a BGRA plate's crop is then a small copy while it waits
    # in hstack's queue, not a reference to the whole 4K frame.
    sides = [s.crop(*window, exact=1).filter("format", "rgb24")
             for s in (tapped, done)]
    return out, ffmpeg.filter(sides, "hstack", inputs=2, shortest=1)


def _audio(audio: AudioSource, container: str):
    """(stream, output options) of the carried audio."""
    stream = ffmpeg.input(audio.path)["a:0"]
    if audio.duration is None:  # the whole plate: stream copy where the container allows
        allowed = AUDIO_COPY[container]
        copy = allowed is None or (audio.codec or "") in allowed
        return stream, {"c:a": "copy" if copy else "aac"}
    # A frame range: cut sample-accurately (a packet copy would shift sync).
    stream = stream.filter("atrim", start=f"{audio.start:.6f}",
                           duration=f"{audio.duration:.6f}").filter("asetpts", "PTS-STARTPTS")
    return stream, {"c:a": "aac", "b:a": "256k"}


def encode_command(out: str, codec: str, *, pix_fmt: str, size: tuple[int, int],
                   frame_size: tuple[int, int], timing: Timing, encoder: dict[str, str],
                   overlay: PlateOverlay | None = None, audio: AudioSource | None = None,
                   sar: Fraction | None = None, progress: str | None = None,
                   tap_fd: int | None = None) -> list[str]:
    """Encode frames arriving on stdin (`pix_fmt`, frame_size (h, w)) into `out` with
    `encoder` options (codecs.encoder_options); size (h, w) is the picture written.
    tap_fd: the inherited pipe that an overlay's tap window goes to, one frame per frame."""
    container = VIDEO_CODECS[codec]["format"]
    video, tap = _frames_in(pix_fmt, frame_size, timing), None
    if overlay is not None:
        video, tap = _over_plate(video, overlay, timing)
    if sar is not None and sar != 1:  # non-square pixels: the result displays as the plate
        video = video.filter("setsar", _rational(sar), max=100000)
    streams, options = [video], dict(encoder)
    if audio is not None:
        stream, audio_options = _audio(audio, container)
        streams.append(stream)
        options |= audio_options
    if timing.variable:  # keep every frame's timestamp, in the plate's own time base
        options |= {"fps_mode": "passthrough", "enc_time_base": _rational(timing.time_base)}
    else:
        options["r"] = _rational(timing.fps)
    cmd = ffmpeg.output(*streams, out, format=container, **options)
    if tap is not None:  # second, so -progress still counts the encoded frames
        cmd = ffmpeg.merge_outputs(cmd, ffmpeg.output(
            tap, f"pipe:{tap_fd}", format="rawvideo", fps_mode="passthrough"))
    cmd = cmd.global_args(*QUIET, "-y", *(("-progress", progress) if progress else ()))
    return cmd.compile()


def stream_copy_command(src: str, dst: str, *, progress: str) -> list[str]:
    """`src`'s first video stream into a Matroska file without re-encoding."""
    out = ffmpeg.output(ffmpeg.input(src)["v:0"], dst, format="matroska", c="copy")
    return out.global_args(*QUIET, "-y", "-progress", progress).compile()


def grey_conversion_command(pix_fmt: str, size: tuple[int, int]) -> list[str]:
    """stdin raw `pix_fmt` frames of size (h, w) -> stdout grey, ffmpeg's own conversion."""
    src = ffmpeg.input("pipe:", format="rawvideo", pix_fmt=pix_fmt, s=f"{size[1]}x{size[0]}")
    return ffmpeg.output(src, "pipe:", format="rawvideo", pix_fmt="gray").global_args(
        *QUIET).compile()


def transcode_command(src: str, out: str, codec: str, *, w: int, h: int, dtype) -> list[str]:
    """A plain transcode of `src` (video + audio copy) with the writers' encoder settings:
    the IO benchmark's reference point."""
    inp = ffmpeg.input(src)
    options = encoder_options(codec, w=w, h=h, dtype=dtype) | {"c:a": "copy"}
    out_ = ffmpeg.output(inp["v:0"], inp["a?"], out, format=VIDEO_CODECS[codec]["format"],
                         **options)
    return out_.global_args(*QUIET, "-y").compile()
