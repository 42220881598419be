"""Video files through ffmpeg pipes: frames stream one at a time (rawvideo), so a 4K plate is
never held whole in memory. Decoding scales inside ffmpeg when a target size is given."""
from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from void_engine.errors import InputError, OutputError
from void_engine.io.uri import make_public

# ffmpeg rawvideo formats per output dtype/channel count.
_PIX = {(np.dtype(np.uint8), 3): "rgb24", (np.dtype(np.uint16), 3): "rgb48le",
        (np.dtype(np.uint8), 1): "gray", (np.dtype(np.uint16), 1): "gray16le"}

# Containers and the encoders/settings that go in them. FFV1 stays in RGB (bgr0/gbrp16) so
# a decode of the result gives back exactly the pixels written.
CODECS = {
    "h264": {"ext": ".mp4", "format": "mp4"},
    "prores": {"ext": ".mov", "format": "mov"},
    "ffv1": {"ext": ".mkv", "format": "matroska"},
}
# Audio codecs each container takes as a stream copy; others are re-encoded to AAC.
_AUDIO_COPY = {
    "mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
    "mov": {"aac", "mp3", "ac3", "alac", "pcm_s16le", "pcm_s24le", "pcm_s16be", "pcm_s24be",
            "pcm_f32le"},
    "matroska": None,  # anything
}


def read_video(path: str, *, first: int = 0, count: int | None = None,  # noqa: C901
               size: tuple[int, int] | None = None, dtype=np.uint8, channels: int = 3,
               scale_flags: str = "area", what: str = "plate",
               threads: int | None = None, source_size: tuple[int, int] | None = None,
               luma_plane: bool = False) -> Iterator[np.ndarray]:
    """Yield frames first..first+count-1 of `path` as (H, W, 3) RGB or (H, W) grey arrays.

    size=(h, w) scales inside ffmpeg (area by default: what a model-space downscale wants).
    Grey output is the luma plane as ffmpeg converts it to full-range grey (a limited-range
    YUV mask's 16/235 come back as 0/255; grey and full-range sources pass unchanged).
    Raises InputError if ffmpeg fails to decode. threads caps the decoder's threads (each
    H.264 frame thread holds its own 4K frames; default: ffmpeg's choice). source_size=(h, w),
    when the caller has probed the file already, saves another ffprobe run. luma_plane=True
    (grey, no resize, 8-bit YUV or grey sources) hands out the stored Y plane untouched: no
    range conversion, at a third less decode CPU than ffmpeg's grey conversion.
    """
    dtype = np.dtype(dtype)
    pix = _PIX[(dtype, channels)]
    filters = []
    if first or count is not None:
        end = "" if count is None else f":end_frame={first + count}"
        filters.append(f"trim=start_frame={first}{end},setpts=PTS-STARTPTS")
    if size is not None:
        filters.append(f"scale={size[1]}:{size[0]}:flags={scale_flags}")
    if luma_plane:
        filters.append("extractplanes=y")
    if size is not None:
        w, h = size[::-1]
    else:
        w, h = source_size[::-1] if source_size is not None else _frame_size(path)
    cmd = ["ffmpeg", "-nostdin", "-v", "error"]
    if threads:
        cmd += ["-threads", str(threads)]
    cmd += ["-i", path, "-map", "0:v:0"]
    if filters:
        cmd += ["-vf", ",".join(filters)]
    cmd += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", pix, "-"]
    frame_bytes = w * h * channels * dtype.itemsize
    shape = (h, w, channels) if channels > 1 else (h, w)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, bufsize=0)
        if frame_bytes > 1 << 20:
            widen_pipe(proc.stdout)
        try:
            produced = 0
            while count is None or produced < count:
                buf = np.empty(frame_bytes, np.uint8)  # filled by the reads: no zeroing
                view = memoryview(buf)
                got = proc.stdout.readinto(view)
                while got and got < frame_bytes:  # pipes hand out partial reads
                    more = proc.stdout.readinto(view[got:])
                    if not more:
                        break
                    got += more
                if not got:
                    break
                if got < frame_bytes:
                    break  # truncated last frame: treated like a decode failure below
                produced += 1
                yield buf.view(dtype).reshape(shape)
            proc.stdout.close()
            rc = proc.wait()
            if rc != 0:
                err.seek(0)
                lines = err.read().decode(errors="replace").strip().splitlines()
                raise InputError(f"{what} {path} could not be decoded "
                                 f"({lines[-1].strip() if lines else f'ffmpeg exit {rc}'})")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def widen_pipe(pipe) -> None:
    """Give a pipe carrying large frames a 1 MiB buffer (Linux; the system's limit allows it
    unprivileged): 16x fewer reads, writes and wake-ups per frame than the default 64 KiB."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass  # another OS, or a lower limit: the default buffer still works


def progress_frames(path: str) -> int:
    """Frames written, from an ffmpeg `-progress` file (its last `frame=` line): ffmpeg's own
    count, which saves an ffprobe run over the finished file."""
    frames = 0
    with open(path) as f:
        for line in f:
            if line.startswith("frame="):
                frames = int(line.split("=", 1)[1])
    return frames


def _frame_size(path: str) -> tuple[int, int]:
    from void_engine.io.probe import ffprobe_json

    s = ffprobe_json(path, "-select_streams", "v:0", "-show_entries", "stream=width,height")
    st = s["streams"][0]
    return int(st["width"]), int(st["height"])


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


# 8-bit formats whose decode to bgra is, channel for channel, the decode to rgb24 (swscale
# converts them with the same tables; tests/test_io checks each). >8-bit YUV is not.
_BGRA_EXACT = {"yuv420p", "yuv422p", "yuv444p", "bgr0", "rgb0", "bgra", "rgba", "rgb24",
               "bgr24", "gbrp"}


def bgra_exact(pix_fmt: str) -> bool:
    """Whether a plate stored as pix_fmt may be blended in BGRA (see PlateOverlay.bgra)."""
    return pix_fmt in _BGRA_EXACT


def codec_args(codec: str, *, w: int, h: int, dtype=np.uint8, channels: int = 3,
               crf: int = 16) -> list[str]:
    """ffmpeg encoder settings for `codec` (what VideoWriter uses; the IO benchmark's plain
    transcode uses the same)."""
    dtype = np.dtype(dtype)
    if channels == 1:  # lossless grey: the luma plane holds the values exactly
        if codec == "h264":
            return ["-c:v", "libx264", "-qp", "0", "-preset", "fast", "-pix_fmt", "yuv444p"]
        if codec == "ffv1":
            return ["-c:v", "ffv1", "-level", "3", "-g", "1", "-pix_fmt", "gray"]
        raise OutputError(f"grey frames are written as h264 or ffv1, not {codec}")
    if codec == "h264":
        # yuv420p plays everywhere but needs even sizes; odd plates get 4:4:4.
        pix = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
        return ["-c:v", "libx264", "-preset", "medium", "-crf", str(crf), "-pix_fmt", pix,
                "-movflags", "+faststart"]
    if codec == "prores":
        return ["-c:v", "prores_ks", "-profile:v", "4", "-pix_fmt", "yuv444p10le",
                "-vendor", "apl0"]
    pix = "bgr0" if dtype == np.uint8 else "gbrp16le"
    # 16 slices: FFV1 threads over slices, so this is what lets the encoder use every core.
    return ["-c:v", "ffv1", "-level", "3", "-g", "1", "-slices", "16", "-slicecrc", "1",
            "-pix_fmt", pix]


class VideoWriter:
    """ffmpeg stdin-pipe encoder writing to a temp name; close() renames it into place.

    codec: h264 (libx264, yuv420p, mp4) | prores (ProRes 4444, mov) | ffv1 (RGB, mkv).
    fps is kept exactly (a Fraction such as 24000/1001). audio=(path, start_s, duration_s)
    carries that file's first audio stream: duration_s=None copies all of it (re-encoding to
    AAC only where the container cannot hold the codec); otherwise the written frames' span
    is cut out sample-accurately and encoded as AAC.
    """

    def __init__(self, path: str, codec: str, *, fps: Fraction, size: tuple[int, int],
                 dtype=np.uint8, audio: tuple[str, float, float | None] | None = None,
                 audio_codec: str | None = None, crf: int = 16, extra: list[str] | None = None,
                 channels: int = 3, overlay: PlateOverlay | None = None):
        if codec not in CODECS:
            raise OutputError(f"unknown video codec {codec!r} (have {', '.join(CODECS)})")
        self.path = os.path.abspath(path)
        self.codec = codec
        self.dtype = np.dtype(dtype)
        self.size = tuple(size)
        self.channels = channels  # 1: grey frames written losslessly (quadmask mattes)
        h, w = self.size
        fmt = CODECS[codec]["format"]
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        base = os.path.basename(self.path)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{base}.part-",
                                        suffix=os.path.splitext(base)[1],
                                        dir=os.path.dirname(self.path))
        os.close(fd)
        make_public(self.tmp)
        fps = Fraction(fps)
        self.overlay = overlay
        blend_fmt = ("bgra" if overlay.bgra else "rgb24") if overlay else None
        pix_in = ("bgra" if overlay.bgra else "rgba") if overlay else _PIX.get(
            (self.dtype, channels))
        if pix_in is None or (overlay and (self.dtype != np.uint8 or channels != 3)):
            raise OutputError(f"video frames must be uint8 or uint16, got {self.dtype}"
                              if pix_in is None else "plate overlays are 8-bit RGB only")
        in_w, in_h = (overlay.size[1], overlay.size[0]) if overlay else (w, h)
        rate = f"{fps.numerator}/{fps.denominator}"
        cmd = ["ffmpeg", "-nostdin", "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", pix_in,
               "-s", f"{in_w}x{in_h}", "-framerate", rate, "-i", "-"]
        if overlay:
            cmd += ["-threads", str(overlay.threads), "-i", overlay.path]
        if audio is not None:
            cmd += ["-i", audio[0]]
        if overlay:
            # Both streams get time base 1/fps and timestamp n, so plate frame n meets patch
            # n exactly (rounding n/fps into a millisecond time base pairs frames wrongly).
            pts = f"settb={fps.denominator}/{fps.numerator},setpts=N"
            cmd += ["-filter_complex",
                    f"[1:v:0]trim=start_frame={overlay.first}:end_frame="
                    f"{overlay.first + overlay.count},{pts},format={blend_fmt}[plate];[0:v]{pts}"
                    f"[patch];[plate][patch]overlay=x={overlay.x}:y={overlay.y}:format=rgb:"
                    "eof_action=endall:shortest=1[v]", "-map", "[v]"]
        else:
            cmd += ["-map", "0:v:0"]
        if audio is not None:
            src, start, duration = audio
            cmd += ["-map", f"{2 if overlay else 1}:a:0?"]
            if duration is None:  # the whole plate: stream copy where the container allows
                allowed = _AUDIO_COPY[fmt]
                copy = allowed is None or (audio_codec or "") in allowed
                cmd += ["-c:a", "copy" if copy else "aac"]
            else:  # a frame range: cut sample-accurately (a packet copy would shift sync)
                cmd += ["-af", f"atrim=start={start:.6f}:duration={duration:.6f},"
                               "asetpts=PTS-STARTPTS", "-c:a", "aac", "-b:a", "256k"]
        cmd += codec_args(codec, w=w, h=h, dtype=self.dtype, channels=channels, crf=crf)
        cmd += extra or []
        self._progress = None
        if overlay:  # how many frames came out (the plate may run short): ffmpeg's own count
            fd, self._progress = tempfile.mkstemp(prefix=".progress-", suffix=".txt")
            os.close(fd)
            cmd += ["-progress", self._progress]
        cmd += ["-r", f"{fps.numerator}/{fps.denominator}", "-f", fmt, self.tmp]
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close()/_fail())
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._err)
        widen_pipe(self.proc.stdin)
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        """One frame: (H, W, 3) or (H, W) for grey; with an overlay, an RGBA (or BGRA)
        patch."""
        if self.overlay:
            shape = (*self.overlay.size, 4)
        else:
            shape = (*self.size, 3) if self.channels == 3 else self.size
        if frame.shape != shape or frame.dtype != self.dtype:
            raise OutputError(f"frame {self.frames} is {frame.dtype} {frame.shape}, writer "
                              f"expects {self.dtype} {shape}")
        try:
            self.proc.stdin.write(np.ascontiguousarray(frame).data)
        except BrokenPipeError:
            if self.overlay and self.proc.wait() == 0:  # the plate ran out of frames
                self._cleanup()
                raise InputError(f"plate {self.overlay.path} gave {self.frames} of "
                                 f"{self.overlay.count} frames while encoding") from None
            self._fail("encoder stopped")
        self.frames += 1

    def _fail(self, why: str) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._err.seek(0)
        lines = self._err.read().decode(errors="replace").strip().splitlines()
        self._cleanup()
        raise OutputError(f"cannot write {self.path}: {why} "
                          f"({lines[-1].strip() if lines else 'no ffmpeg message'})")

    def close(self) -> str:
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        if self.proc.wait() != 0:
            self._fail(f"ffmpeg exit {self.proc.returncode}")
        self._err.close()
        if self.overlay:  # the plate may have run out before the patches did
            got = progress_frames(self._progress)
            if got != self.frames:
                self._cleanup()
                raise InputError(f"plate {self.overlay.path} gave {got} of {self.frames} "
                                 "frames while encoding")
        os.replace(self.tmp, self.path)
        self._cleanup()
        return self.path

    def abort(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        for path in (self.tmp, self._progress):
            if path and os.path.exists(path):
                os.remove(path)
        if not self._err.closed:
            self._err.close()
