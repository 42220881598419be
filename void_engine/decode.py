"""decode_shot: plate + quadmask in, model-space clip and mask out (see void_engine.stages).

One streaming decode of each: the plate at model size (scaled inside ffmpeg) on a thread, the
plate-size mask on the caller's, which also counts values, stores the per-frame change
regions and the matte for encode_shot, so the 4K mask is never decoded twice.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from void_engine.engines.base import DEFAULT_MODEL_SIZE, FrameRules, ProgressFn
from void_engine.errors import InputError, OutputError
from void_engine.shot import DecodedShot, ModelSpaceMap, save_npy


def decode_shot(plate_uri: str, quadmask_uri: str, workdir: str | Path, *, shot_id: str,
                frame_range: tuple[int, int] | None = None,
                model_size: tuple[int, int] = DEFAULT_MODEL_SIZE,
                frame_rules: FrameRules = FrameRules(),
                fps: float | None = None, progress: ProgressFn | None = None) -> DecodedShot:
    """Probe + validate plate and quadmask, bring both to model space (streaming decode,
    scaled inside ffmpeg), pad per frame_rules, write clip/mask .npy + decoded.json to workdir.
    frame_range is inclusive (first, last) in plate frames. Raises InputError naming shot_id.
    fps sets the rate of image-sequence plates (they carry none; default 24)."""
    try:
        return _decode_shot(plate_uri, quadmask_uri, Path(workdir), shot_id, frame_range,
                            tuple(model_size), frame_rules, fps, progress)
    except InputError as exc:
        raise exc.for_shot(shot_id) from None


def _decode_shot(plate_uri, quadmask_uri, workdir, shot_id, frame_range, model_size,
                 frame_rules, fps, progress) -> DecodedShot:
    from void_engine.io import frame_timing, local_input, probe
    from void_engine.modelspace import pad_plan

    workdir.mkdir(parents=True, exist_ok=True)
    mh, mw = model_size
    with local_input(plate_uri, "plate") as plate_path, \
            local_input(quadmask_uri, "quadmask") as mask_path:
        with ThreadPoolExecutor(2) as pool:  # two ffprobe runs at once (~0.15 s each)
            mask_probe = pool.submit(probe, mask_path, what="quadmask")
            plate = probe(plate_path, what="plate", fps=fps)
            first, n = resolve_range(frame_range, plate.frames)
            minfo = mask_probe.result()
        plate.check_progressive()
        mask_first, mask_size = _align_mask(minfo, plate, first, n)
        clip = np.empty((n, mh, mw, 3), np.uint8)
        # The plate decodes (small, scaled in ffmpeg) in a thread while the mask pass runs;
        # its errors are raised after the mask's: most bad input is a bad mask.
        with _PlateToModelSpace(plate, first, n, model_size, clip) as plate_job:
            both = progress and (lambda i, total: progress(i + plate_job.got, total))
            masks, counts = _mask_pass(quadmask_uri, minfo, plate, mask_first, n, mask_size,
                                       model_size, workdir, both, frame_timing(plate, first, n))
            got = plate_job.wait()
        if progress:
            progress(2 * n, 2 * n)
        if got != n:
            raise InputError(f"plate {plate_uri} decoded {got} of {n} frames "
                             "(truncated or corrupt)")
    indices = pad_plan(n, frame_rules)
    clip_path = save_npy(workdir / "clip.npy", clip[indices])
    mask_path_out = save_npy(workdir / "mask.npy", masks[indices])
    mapping = ModelSpaceMap(plate_size=plate.size, plate_fps=float(plate.fps), first_frame=first,
                            num_frames=n, model_size=model_size, frame_indices=indices,
                            plate_fps_rational=f"{plate.fps.numerator}/{plate.fps.denominator}")
    decoded = DecodedShot(shot_id=shot_id, plate_uri=str(plate_uri),
                          quadmask_uri=str(quadmask_uri), clip_path=clip_path,
                          mask_path=mask_path_out, mapping=mapping, mask_histogram=counts,
                          mask_first_frame=mask_first, plate_depth=plate.depth,
                          regions_file=_REGIONS, matte_file=_MATTE,
                          display_note="; ".join(plate.display_notes()))
    decoded.to_json(workdir / DecodedShot.JSON)
    return decoded


_REGIONS, _MATTE = "regions.npz", "matte.mkv"


class _PlateToModelSpace:
    """Decode plate frames at model size into `clip` on a background thread."""

    def __init__(self, plate, first, n, model_size, clip):
        import threading

        self.args = (plate, first, n, model_size, clip)
        self.got, self.error, self.stop = 0, None, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        from void_engine.io import read_frames

        plate, first, n, model_size, clip = self.args
        frames = read_frames(plate, first=first, count=n, size=model_size, uint8=True,
                             threads=2)
        try:
            for i, frame in enumerate(frames):
                if self.stop.is_set():
                    break
                clip[i] = frame
                self.got = i + 1
        except BaseException as exc:  # noqa: BLE001 - re-raised by wait()
            self.error = exc
        finally:
            frames.close()

    def wait(self) -> int:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.got

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def _mask_pass(quadmask_uri, minfo, plate, mask_first, n, mask_size, model_size, workdir,
               progress, timing):
    """One decode of the plate-size mask: model-size masks, value counts, change regions and
    the matte (a stream copy of the mask file when it already is one, else a lossless
    encode, with the plate's frame times when it has variable rate). Returns (masks,
    counts)."""
    import contextlib

    import cv2

    from void_engine.io import Prefetch
    from void_engine.io import maskfile as mio
    from void_engine.modelspace import ChangeRegionWriter, resize_mask
    from void_engine.quadmask import KEEP

    copy = mio.may_stream_copy(minfo, plate, mask_first, n, mask_size)
    copier = _speculative_copy(minfo.path, str(workdir / f".copy.{_MATTE}"), n) if copy \
        else None
    masks = np.empty((n, *model_size), np.uint8)
    raw_counts = np.zeros(256, np.int64)
    got = 0
    regions = ChangeRegionWriter(str(workdir / _REGIONS), plate.size)
    try:
        with contextlib.ExitStack() as stack:
            matte = None if copy else stack.enter_context(mio.open_quadmask_writer(
                str(workdir / _MATTE), fps=plate.fps, size=plate.size,
                **timing))
            # Decoded a couple of frames ahead on a thread: ffmpeg keeps decoding while this
            # loop works (the pipe alone holds 64 KB, so it would wait on every frame).
            frames = stack.enter_context(Prefetch(mio.quantized_frames(
                minfo, first=mask_first, count=n, size=mask_size), depth=2))
            for i, (q, hist, box) in enumerate(frames):
                raw_counts += hist
                masks[i] = resize_mask(q, model_size)
                if box is None:
                    regions.add(None)
                else:  # only the box can hold change
                    y0, y1, x0, x1 = box
                    regions.add(cv2.compare(q[y0:y1, x0:x1], KEEP, cv2.CMP_NE), (y0, x0))
                if matte is not None:
                    matte.write(q)
                got = i + 1
                if progress:
                    progress(i + 1, 2 * n)
            if got != n:
                raise InputError(f"quadmask {quadmask_uri} decoded {got} of {n} frames "
                                 "(truncated or corrupt)")
            counts = mio.quantized_counts(raw_counts)
            if counts[KEEP] == sum(counts.values()):
                raise InputError("quadmask is empty: no pixel is marked for removal (all 255)")
        regions.close()
    except BaseException:
        regions.abort()
        _discard(copier)
        raise
    copied = copier.result() if copier else ""
    if copied and mio.holds_exact_values(raw_counts):
        os.replace(copied, workdir / _MATTE)
    elif copy:  # lossless-capable, but not used losslessly (or no copy): encode after all
        _discard(copier)
        frames = mio.read_quadmask(minfo.path, first=mask_first, count=n, strict=False)
        mio.write_quadmask(str(workdir / _MATTE), frames, fps=plate.fps)
    return masks, counts


def _speculative_copy(src: str, dst: str, frames: int):
    """Start the matte's stream copy on a thread while the mask pass runs (it only becomes
    the matte if the pass finds exact values); the future gives dst, or "" if it failed."""
    from void_engine.io.maskfile import copy_matte

    def run() -> str:
        try:
            return copy_matte(src, dst, frames=frames)
        except OutputError:
            return ""

    pool = ThreadPoolExecutor(1)
    future = pool.submit(run)
    pool.shutdown(wait=False)
    return future


def _discard(copier) -> None:
    path = copier.result() if copier is not None else ""
    if path and os.path.exists(path):
        os.remove(path)


def resolve_range(frame_range: tuple[int, int] | None, total: int) -> tuple[int, int]:
    """(first, count) of an inclusive plate frame range; InputError when outside the plate."""
    if frame_range is None:
        return 0, total
    a, b = (int(v) for v in frame_range)
    if a < 0 or b < a:
        raise InputError(f"frame range {a}-{b} is invalid (need 0 <= first <= last)")
    if b >= total:
        raise InputError(f"frame range {a}-{b} is outside the plate's frames 0-{total - 1}")
    return a, b - a + 1


def _align_mask(minfo, plate, first: int, n: int) -> tuple[int, tuple[int, int] | None]:
    """Which mask frames go with the plate range, and the size to resize the mask to (None
    when it matches; a proxy-resolution mask with the plate's aspect ratio is accepted)."""
    if minfo.size == plate.size:
        size = None
    elif abs(minfo.width / minfo.height - plate.width / plate.height) < 0.01 * (
            plate.width / plate.height):
        size = plate.size
    else:
        hint = ""
        if plate.rotation in (90, 270) and minfo.size == plate.size[::-1]:
            hint = (f" (displayed: the plate is stored {plate.height}x{plate.width} and turned "
                    f"{plate.rotation}° by its display matrix; draw the quadmask on the picture "
                    "as players show it)")
        raise InputError(f"quadmask is {minfo.width}x{minfo.height} but the plate is "
                         f"{plate.width}x{plate.height}{hint}")
    if minfo.frames == plate.frames:
        return first, size
    if minfo.frames == n:  # a mask made for the range only
        return 0, size
    raise InputError(f"quadmask has {minfo.frames} frames but the plate has {plate.frames}")
