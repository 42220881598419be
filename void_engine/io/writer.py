"""Writing video files through an ffmpeg stdin pipe, to a hidden temp name renamed into place
only when the encoder finished cleanly (void_engine.io.atomic). The command is built in
void_engine.io.commands; encoder settings come from void_engine.io.codecs."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from fractions import Fraction

import numpy as np

from void_engine.errors import InputError, OutputError
from void_engine.io.atomic import AtomicPath, describe_os_error, describe_tool_message
from void_engine.io.codecs import VIDEO_CODECS, encoder_options
from void_engine.io.commands import AudioSource, PlateOverlay, Timing, encode_command
from void_engine.io.video import PIX_FMTS, progress_frames, widen_pipe

# 8-bit formats whose decode to bgra is, channel for channel, the decode to rgb24 (swscale
# converts them with the same tables; tests/void_engine/io checks each). >8-bit YUV is not.
BGRA_EXACT = {"yuv420p", "yuv422p", "yuv444p", "bgr0", "rgb0", "bgra", "rgba", "rgb24",
              "bgr24", "gbrp"}


def bgra_exact(pix_fmt: str) -> bool:
    """Whether a plate stored as pix_fmt may be blended in BGRA (see PlateOverlay.bgra)."""
    return pix_fmt in BGRA_EXACT


class VideoWriter:
    """ffmpeg stdin-pipe encoder writing to a temp name; close() renames it into place.

    codec: h264 (libx264, yuv420p, mp4) | prores (ProRes 4444, mov) | ffv1 (RGB, mkv).
    fps is kept exactly (a Fraction such as 24000/1001). timestamps (with time_base): each
    frame's presentation time, for variable-rate plates (frames then travel as NUT, which
    carries them; the output keeps them). audio=(path, start_s, duration_s) carries that
    file's first audio stream: duration_s=None copies all of it (re-encoding to AAC only where
    the container cannot hold the codec); otherwise the written frames' span is cut out
    sample-accurately and encoded as AAC. sar: the plate's pixel aspect, carried so the
    result displays as the plate does. encoder: ffmpeg output options replacing the codec's
    own (e.g. the eval generator's lossless RGB H.264 plates).

    on_tap: with an overlay whose `tap` window is set, called with that window of every
    frame as encoded ((h, 2w, 3) uint8: the plate left, the composited result right), in
    order, on a thread of the writer's that drains ffmpeg's tap pipe; the same array is
    reused for the next frame (copy what you keep). An error it raises fails close() (the
    pipe is still drained, so ffmpeg never waits on it).
    """

    def __init__(self, path: str, codec: str, *, fps: Fraction, size: tuple[int, int],
                 dtype=np.uint8, audio: tuple[str, float, float | None] | None = None,
                 audio_codec: str | None = None, crf: int = 16, channels: int = 3,
                 overlay: PlateOverlay | None = None, sar: Fraction | None = None,
                 timestamps: list[int] | None = None, time_base: Fraction | None = None,
                 encoder: dict[str, str] | None = None, on_tap=None):
        if codec not in VIDEO_CODECS:
            raise OutputError(f"unknown video codec {codec!r} (have {', '.join(VIDEO_CODECS)})")
        self.path = str(path)
        self.dtype, self.size, self.channels = np.dtype(dtype), tuple(size), channels
        self.overlay = overlay
        pix_in = self._input_format()
        self.frame_shape = (*overlay.size, 4) if overlay else (
            (*self.size, 3) if channels == 3 else self.size)
        self.timestamps = list(timestamps) if timestamps is not None else None
        timing = Timing(Fraction(fps), Fraction(time_base) if self.timestamps is not None
                        else None)
        # Everything this writer holds (temp output, ffmpeg's messages, its progress file)
        # is released by _cleanup() on every path; the output is committed only by close().
        self._resources = contextlib.ExitStack()
        self._target = AtomicPath(self.path, what="video")
        self._resources.callback(self._target.discard)
        self._progress, self._nut, self._tap = None, None, None
        tap_fd = None
        if overlay and overlay.tap and on_tap is None:
            raise OutputError("an overlay tap needs on_tap to read it")
        try:
            self.tmp = self._target.__enter__()
            self._err = self._resources.enter_context(_messages_file())
            if overlay:  # how many frames came out (the plate may run short): ffmpeg's count
                self._progress = self._resources.enter_context(_scratch_file(".progress-"))
            if overlay and overlay.tap:
                read_fd, tap_fd = os.pipe()
                self._resources.callback(os.close, read_fd)  # after the reader's join
            try:
                h, w = self.size
                cmd = encode_command(
                    self.tmp, codec, pix_fmt=pix_in, size=self.size,
                    frame_size=self.frame_shape[:2], timing=timing, overlay=overlay,
                    encoder=encoder or encoder_options(codec, w=w, h=h, dtype=self.dtype,
                                                       channels=channels, crf=crf),
                    audio=AudioSource(*audio, codec=audio_codec) if audio else None, sar=sar,
                    progress=self._progress, tap_fd=tap_fd)
                self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._err,
                                             pass_fds=(tap_fd,) if tap_fd is not None else ())
            finally:
                if tap_fd is not None:  # ffmpeg holds its own copy: its exit is the EOF
                    os.close(tap_fd)
        except BaseException:
            self._cleanup()
            raise
        widen_pipe(self.proc.stdin)
        if tap_fd is not None:
            y0, y1, x0, x1 = overlay.tap
            self._tap = _TapReader(read_fd, (y1 - y0, 2 * (x1 - x0), 3), on_tap)
            self._resources.callback(self._tap.join)  # runs first: ffmpeg is gone by then
        if timing.variable:
            from void_engine.io.nut import NutFeed

            self._nut = NutFeed(self.proc.stdin, pix_in, self.frame_shape[:2], timing.time_base)
        self.frames = 0

    def _input_format(self) -> str:
        if self.overlay:
            if self.dtype != np.uint8 or self.channels != 3:
                raise OutputError("plate overlays are 8-bit RGB only")
            return "bgra" if self.overlay.bgra else "rgba"
        pix = PIX_FMTS.get((self.dtype, self.channels))
        if pix is None:
            raise OutputError(f"video frames must be uint8 or uint16, got {self.dtype}")
        return pix

    def write(self, frame: np.ndarray) -> None:
        """One frame: (H, W, 3) or (H, W) for grey; with an overlay, an RGBA (or BGRA)
        patch."""
        if frame.shape != self.frame_shape or frame.dtype != self.dtype:
            raise OutputError(f"frame {self.frames} is {frame.dtype} {frame.shape}, writer "
                              f"expects {self.dtype} {self.frame_shape}")
        try:
            if self._nut is not None:
                if self.frames >= len(self.timestamps):
                    raise OutputError(f"frame {self.frames} has no timestamp (the writer was "
                                      f"given {len(self.timestamps)})")
                self._nut.write(frame, self.timestamps[self.frames])
            else:
                self.proc.stdin.write(np.ascontiguousarray(frame).data)
        except OSError as exc:
            if self.overlay and self.proc.wait() == 0:  # the plate ran out of frames
                self._cleanup()
                raise InputError(f"plate {self.overlay.path} gave {self.frames} of "
                                 f"{self.overlay.count} frames while encoding") from None
            self._fail("encoder stopped", exc)
        self.frames += 1

    def _fail(self, why: str, exc: BaseException | None = None) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._err.seek(0)
        lines = self._err.read().decode(errors="replace").strip().splitlines()
        self._cleanup()
        said = (describe_tool_message(lines[-1].strip()) if lines else
                _silent_exit(self.proc.returncode, exc))
        raise OutputError(f"cannot write {self.path}: {why} ({said})")

    def close(self) -> str:
        try:
            if self._nut is not None:
                self._nut.close()
            self.proc.stdin.close()
        except OSError:
            pass  # a closed pipe: the exit status below says why
        if self.proc.wait() != 0:
            self._fail("encoder failed")
        if self._tap is not None and self._tap.join() is not None:
            self._cleanup()
            raise self._tap.error
        if self.overlay:  # the plate may have run out before the patches did
            got = progress_frames(self._progress)
            if got != self.frames:
                self._cleanup()
                raise InputError(f"plate {self.overlay.path} gave {got} of {self.frames} "
                                 "frames while encoding")
        try:
            self._target.commit()
        finally:
            self._cleanup()
        return self.path

    def abort(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        self._resources.close()


class _TapReader:
    """Reads an ffmpeg tap pipe to its end on a thread, handing each frame to a consumer.
    A consumer error is kept (error) and the rest of the pipe is drained unread, so the
    encoder never stalls on a full pipe."""

    def __init__(self, fd: int, shape: tuple[int, int, int], consumer):
        import threading

        self.error: BaseException | None = None
        self.frames = 0
        self._fd, self._shape, self._consumer = fd, shape, consumer
        self._thread = threading.Thread(target=self._run, name="ffmpeg-tap", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from void_engine.io.video import _read_into

        # One buffer for every frame: a fresh 4K-sized array per frame, allocated and freed
        # on this thread, grows the process by tens of MB in malloc's per-thread arena.
        frame = np.empty(self._shape, np.uint8)
        with os.fdopen(os.dup(self._fd), "rb", buffering=0) as pipe:
            while True:
                if _read_into(pipe, memoryview(frame).cast("B")) < frame.nbytes:
                    return  # the end (or a partial frame of an encoder that failed)
                self.frames += 1
                if self.error is None:
                    try:
                        self._consumer(frame)
                    except BaseException as exc:  # noqa: BLE001 - handed to close()
                        self.error = exc

    def join(self) -> BaseException | None:
        """Wait for the end of the pipe (call once ffmpeg has exited); the consumer's error."""
        self._thread.join()
        return self.error


def _silent_exit(returncode: int, exc: BaseException | None) -> str:
    """Why ffmpeg stopped without a word: a signal (a file size limit kills with SIGXFSZ),
    or what the pipe said."""
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        if -returncode == getattr(signal, "SIGXFSZ", -1):
            return f"file too large for the process's file size limit ({name})"
        return f"ffmpeg killed by {name}"
    return describe_os_error(exc) if isinstance(exc, OSError) else "no ffmpeg message"


@contextlib.contextmanager
def _messages_file():
    """An anonymous temp file for ffmpeg's stderr (a pipe could fill up and stall it)."""
    with tempfile.TemporaryFile() as f:
        yield f


@contextlib.contextmanager
def _scratch_file(prefix: str):
    """A named temp file (for ffmpeg to write to), removed on exit."""
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".txt")
    os.close(fd)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
