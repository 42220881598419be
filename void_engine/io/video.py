"""Reading video files through an ffmpeg pipe: frames stream one at a time (rawvideo), so a 4K
plate is never held whole in memory. Decoding scales inside ffmpeg when a target size is given.
The command itself is built in void_engine.io.commands."""
from __future__ import annotations

import tempfile
from collections.abc import Iterator

import numpy as np

from void_engine.errors import InputError
from void_engine.io.commands import decode_command

# ffmpeg rawvideo formats per output dtype/channel count.
PIX_FMTS = {(np.dtype(np.uint8), 3): "rgb24", (np.dtype(np.uint16), 3): "rgb48le",
            (np.dtype(np.uint8), 1): "gray", (np.dtype(np.uint16), 1): "gray16le"}


def read_video(path: str, *, first: int = 0, count: int | None = None,
               size: tuple[int, int] | None = None, dtype=np.uint8, channels: int = 3,
               scale_flags: str = "area", what: str = "plate",
               threads: int | None = None, source_size: tuple[int, int] | None = None,
               luma_plane: bool = False) -> Iterator[np.ndarray]:
    """Yield frames first..first+count-1 of `path` as (H, W, 3) RGB or (H, W) grey arrays,
    as players show them (display-matrix rotation applied).

    size=(h, w) scales inside ffmpeg (area by default: what a model-space downscale wants).
    Grey output is the luma plane as ffmpeg converts it to full-range grey (a limited-range
    YUV mask's 16/235 come back as 0/255; grey and full-range sources pass unchanged).
    Raises InputError if ffmpeg fails to decode. threads caps the decoder's threads (each
    H.264 frame thread holds its own 4K frames; default: ffmpeg's choice). source_size=(h, w),
    the displayed size when the caller has probed the file already, saves another probe.
    luma_plane=True (grey, no resize, 8-bit YUV or grey sources) hands out the stored Y plane
    untouched: no range conversion, at a third less decode CPU than ffmpeg's grey conversion.
    """
    dtype = np.dtype(dtype)
    if size is None and source_size is None:
        from void_engine.io.probe import probe

        source_size = probe(path, what=what).size
    h, w = size if size is not None else source_size
    cmd = decode_command(path, pix_fmt=PIX_FMTS[(dtype, channels)], first=first, count=count,
                         size=size, scale_flags=scale_flags, luma_plane=luma_plane,
                         threads=threads)
    shape = (h, w, channels) if channels > 1 else (h, w)
    with tempfile.TemporaryFile() as err:
        yield from _frames_from(cmd, err, shape, dtype, count, f"{what} {path}")


def _frames_from(cmd: list[str], err, shape: tuple[int, ...], dtype: np.dtype,
                 count: int | None, what: str) -> Iterator[np.ndarray]:
    """Run `cmd` and cut its stdout into frames of `shape`; ffmpeg's failure (or a truncated
    last frame) is an InputError naming `what` with ffmpeg's last message."""
    import subprocess

    frame_bytes = int(np.prod(shape)) * dtype.itemsize
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, bufsize=0)
    if frame_bytes > 1 << 20:
        widen_pipe(proc.stdout)
    try:
        produced = 0
        while count is None or produced < count:
            buf = np.empty(frame_bytes, np.uint8)  # filled by the reads: no zeroing
            got = _read_into(proc.stdout, memoryview(buf))
            if got < frame_bytes:  # end of stream; a partial frame counts as a failure
                truncated = got > 0
                break
            produced += 1
            yield buf.view(dtype).reshape(shape)
        else:
            truncated = False
        proc.stdout.close()
        rc = proc.wait()
        if rc != 0 or truncated:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            why = lines[-1].strip() if lines else (f"ffmpeg exit {rc}" if rc else
                                                  "truncated last frame")
            raise InputError(f"{what} could not be decoded ({why})")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _read_into(pipe, view: memoryview) -> int:
    """Fill `view` from `pipe` (pipes hand out partial reads); bytes read, short at EOF."""
    got = 0
    while got < len(view):
        more = pipe.readinto(view[got:])
        if not more:
            break
        got += more
    return got


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
