"""The per-shot stages as plain functions: files in, files out, typed records between them.

    plate + quadmask --decode_shot--> DecodedShot (model-space clip + mask as .npy, mapping)
                     --run_pass1----> pass1.npy (model space)
                     --run_pass2----> pass2.npy (model space)
                     --encode_shot--> EncodedShot (plate-resolution result, matte, review media)

`void-batch remove` chains them in one process; the Prefect tasks in tasks/ wrap each one with
content-addressed caching, retries and placement (GPU stages on a Ray actor). Records are
JSON-serialisable (`to_json`/`from_json`) so they can cross process boundaries as paths.
Every file written here goes to a temporary name first and is renamed into place.

Paths/URIs may be local or fsspec URIs (remote ones go through a temporary local copy).
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from void_engine.engines.base import Engine, FrameRules, ProgressFn, RemovalParams
from void_engine.errors import InputError, OutputError


@dataclass
class ModelSpaceMap:
    """How model-space frames relate to the plate (enough to undo the mapping)."""

    plate_size: tuple[int, int]  # (height, width) of the plate
    plate_fps: float
    first_frame: int  # first plate frame used (inclusive, 0-based within the plate)
    num_frames: int  # real (unpadded) frames taken from the plate
    model_size: tuple[int, int]  # (height, width) the engine works at
    frame_indices: list[int]  # for each model frame, the index (0..num_frames-1) it shows
    plate_fps_rational: str = ""  # exact plate rate, e.g. "24000/1001" (plate_fps rounds)


@dataclass
class DecodedShot:
    shot_id: str
    plate_uri: str
    quadmask_uri: str
    clip_path: str  # .npy uint8 (T, H, W, 3), model space, padded per the engine's FrameRules
    mask_path: str  # .npy uint8 (T, H, W), quantized quadmask, model space, padded
    mapping: ModelSpaceMap
    mask_histogram: dict[int, int] = field(default_factory=dict)  # at plate resolution
    mask_first_frame: int = 0  # first quadmask frame used (the mask may cover only the range)
    plate_depth: int = 8  # 8/16 (integer) or 32 (float EXR): the dtype plate frames decode to
    # Files beside mask_path (names, so the record survives its folder being moved); empty in
    # records from before they existed, and then encode_shot decodes the quadmask again.
    regions_file: str = ""  # per-frame change boxes + maps at plate size (ChangeRegions)
    matte_file: str = ""  # the quadmask at plate size, lossless, for the shot's frames

    def beside(self, name: str) -> str:
        """Path of a file decode_shot wrote next to mask_path."""
        return os.path.join(os.path.dirname(self.mask_path), name)

    def to_json(self, path: str | Path) -> str:
        return _write_json(path, dataclasses.asdict(self))

    @classmethod
    def from_json(cls, path: str | Path) -> "DecodedShot":
        d = json.loads(Path(path).read_text())
        m = d.pop("mapping")
        m["plate_size"] = tuple(m["plate_size"])
        m["model_size"] = tuple(m["model_size"])
        d["mask_histogram"] = {int(k): v for k, v in d.get("mask_histogram", {}).items()}
        return cls(mapping=ModelSpaceMap(**m), **d)


@dataclass
class CompositeParams:
    """How the model-space result goes back into the plate."""

    dilate_px: int = 8  # grow the change region (at plate resolution) before blending
    feather_px: int = 8  # soft edge width outside the dilated region
    upscale: str = "lanczos"  # cv2 interpolation used to bring the result to plate size


@dataclass
class EncodedShot:
    shot_id: str
    result_uri: str
    matte_uri: str  # the quadmask at plate size, lossless
    review_movie_uri: str | None = None
    contact_sheet_uri: str | None = None
    frames: int = 0
    fps: float = 0.0
    size: tuple[int, int] = (0, 0)  # (height, width)
    fps_rational: str = ""  # exact output rate, e.g. "24000/1001"

    def to_json(self, path: str | Path) -> str:
        return _write_json(path, dataclasses.asdict(self))

    @classmethod
    def from_json(cls, path: str | Path) -> "EncodedShot":
        d = json.loads(Path(path).read_text())
        d["size"] = tuple(d["size"])
        return cls(**d)


def decode_shot(plate_uri: str, quadmask_uri: str, workdir: str | Path, *, shot_id: str,
                frame_range: tuple[int, int] | None = None,
                model_size: tuple[int, int] = (384, 672),
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
    from void_engine.io import local_input, probe
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
        mask_first, mask_size = _align_mask(minfo, plate, first, n)
        clip = np.empty((n, mh, mw, 3), np.uint8)
        # The plate decodes (small, scaled in ffmpeg) in a thread while the mask pass runs;
        # its errors are raised after the mask's: most bad input is a bad mask.
        with _PlateToModelSpace(plate, first, n, model_size, clip) as plate_job:
            both = progress and (lambda i, total: progress(i + plate_job.got, total))
            masks, counts = _mask_pass(quadmask_uri, minfo, plate, mask_first, n, mask_size,
                                       model_size, workdir, both)
            got = plate_job.wait()
        if progress:
            progress(2 * n, 2 * n)
        if got != n:
            raise InputError(f"plate {plate_uri} decoded {got} of {n} frames "
                             "(truncated or corrupt)")
    indices = pad_plan(n, frame_rules)
    clip_path = _save_npy(workdir / "clip.npy", clip[indices])
    mask_path_out = _save_npy(workdir / "mask.npy", masks[indices])
    mapping = ModelSpaceMap(plate_size=plate.size, plate_fps=float(plate.fps), first_frame=first,
                            num_frames=n, model_size=model_size, frame_indices=indices,
                            plate_fps_rational=f"{plate.fps.numerator}/{plate.fps.denominator}")
    decoded = DecodedShot(shot_id=shot_id, plate_uri=str(plate_uri),
                          quadmask_uri=str(quadmask_uri), clip_path=clip_path,
                          mask_path=mask_path_out, mapping=mapping, mask_histogram=counts,
                          mask_first_frame=mask_first, plate_depth=plate.depth,
                          regions_file=_REGIONS, matte_file=_MATTE)
    decoded.to_json(workdir / "decoded.json")
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
               progress):
    """One decode of the plate-size mask: model-size masks, value counts, change regions and
    the matte (a stream copy of the mask file when it already is one, else a lossless
    encode). Returns (masks, counts)."""
    import contextlib

    import cv2

    from void_engine.io import Prefetch
    from void_engine.io import matte as mio
    from void_engine.modelspace import ChangeRegionWriter, resize_mask
    from void_engine.quadmask import KEEP, open_quadmask_writer

    copy = mio.may_stream_copy(minfo, plate, mask_first, n, mask_size)
    copier = _speculative_copy(minfo.path, str(workdir / f".copy.{_MATTE}"), n) if copy \
        else None
    masks = np.empty((n, *model_size), np.uint8)
    raw_counts = np.zeros(256, np.int64)
    got = 0
    regions = ChangeRegionWriter(str(workdir / _REGIONS), plate.size)
    try:
        with contextlib.ExitStack() as stack:
            matte = None if copy else stack.enter_context(open_quadmask_writer(
                str(workdir / _MATTE), fps=plate.fps, size=plate.size))
            # Decoded a couple of frames ahead on a thread: ffmpeg keeps decoding while this
            # loop works (the pipe alone holds 64 KB, so it would wait on every frame).
            frames = stack.enter_context(Prefetch(mio.quantized_frames(
                minfo, first=mask_first, count=n, size=mask_size), depth=2))
            for i, (q, hist, box) in enumerate(frames):
                raw_counts += hist
                masks[i] = resize_mask(q, model_size)
                if box is None:
                    regions.add(np.zeros((1, 1), bool))
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
        from void_engine.quadmask import read_quadmask, write_quadmask

        _discard(copier)
        frames = read_quadmask(minfo.path, first=mask_first, count=n, strict=False)
        write_quadmask(str(workdir / _MATTE), frames, fps=plate.fps)
    return masks, counts


def _speculative_copy(src: str, dst: str, frames: int):
    """Start the matte's stream copy on a thread while the mask pass runs (it only becomes
    the matte if the pass finds exact values); the future gives dst, or "" if it failed."""
    from void_engine.io.matte import stream_copy

    def run() -> str:
        try:
            return stream_copy(src, dst, frames=frames)
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
        raise InputError(f"quadmask is {minfo.width}x{minfo.height} but the plate is "
                         f"{plate.width}x{plate.height}")
    if minfo.frames == plate.frames:
        return first, size
    if minfo.frames == n:  # a mask made for the range only
        return 0, size
    raise InputError(f"quadmask has {minfo.frames} frames but the plate has {plate.frames}")


def run_pass1(decoded: DecodedShot, engine: Engine, prompt: str, params: RemovalParams,
              out_path: str | Path, progress: ProgressFn | None = None) -> str:
    """Engine pass 1 on the decoded clip; writes (T, H, W, 3) uint8 .npy; returns its path."""
    clip, mask = _load_model_space(decoded)
    out = engine.pass1(clip, mask, prompt, params, progress)
    return _save_npy(out_path, _check_result(out, clip, engine.name, "pass 1"))


def run_pass2(decoded: DecodedShot, pass1_path: str | Path, engine: Engine, prompt: str,
              params: RemovalParams, out_path: str | Path,
              progress: ProgressFn | None = None) -> str:
    """Engine pass 2 refining the pass-1 result; writes .npy; returns its path."""
    clip, mask = _load_model_space(decoded)
    pass1 = np.load(pass1_path)
    _check_result(pass1, clip, engine.name, "pass 1")
    out = engine.pass2(clip, mask, prompt, pass1, params, progress)
    return _save_npy(out_path, _check_result(out, clip, engine.name, "pass 2"))


def _load_model_space(decoded: DecodedShot) -> tuple[np.ndarray, np.ndarray]:
    from void_engine.engines.base import check_clip

    clip, mask = np.load(decoded.clip_path), np.load(decoded.mask_path)
    check_clip(clip, mask)
    return clip, mask


def _check_result(out: np.ndarray, clip: np.ndarray, engine: str, what: str) -> np.ndarray:
    out = np.asarray(out)
    if out.shape != clip.shape or out.dtype != np.uint8:
        raise OutputError(f"engine {engine!r} {what} returned {out.dtype} {out.shape}, "
                          f"expected uint8 {clip.shape}")
    return out


def encode_shot(decoded: DecodedShot, result_path: str | Path, out_dir: str | Path, *,
                codec: str = "ffv1", composite: CompositeParams = CompositeParams(),
                review: bool = True, progress: ProgressFn | None = None,
                result_uri: str | None = None) -> EncodedShot:
    """Drop padding, upscale, composite into the plate (streaming), encode with `codec`,
    write the matte and review media into out_dir.

    result_uri overrides the result's location (default <out_dir>/<shot_id>.<ext>, a folder
    for png/exr); matte and review media sit beside it as <stem>_matte.mkv,
    <stem>_review.mp4 and <stem>_contact.png."""
    from void_engine.io import ALL_CODECS, check_writable, output_name

    if codec not in ALL_CODECS:
        raise OutputError(f"unknown codec {codec!r} (have {', '.join(ALL_CODECS)})")
    result_uri = result_uri or output_name(os.path.join(str(out_dir), decoded.shot_id), codec)
    stem = _strip_ext(result_uri)
    outputs = {"result": result_uri, "matte": f"{stem}_matte.mkv"}
    if review:
        outputs |= {"review": f"{stem}_review.mp4", "contact": f"{stem}_contact.png"}
    for what, uri in outputs.items():
        check_writable(uri, what)
    try:
        frames = _encode(decoded, result_path, codec, composite, outputs, progress)
    except InputError as exc:
        raise exc.for_shot(decoded.shot_id) from None
    m = decoded.mapping
    fps = _fps(m)
    return EncodedShot(shot_id=decoded.shot_id, result_uri=result_uri,
                       matte_uri=outputs["matte"], review_movie_uri=outputs.get("review"),
                       contact_sheet_uri=outputs.get("contact"), frames=frames,
                       fps=float(fps), size=tuple(m.plate_size),
                       fps_rational=f"{fps.numerator}/{fps.denominator}")


def _encode(decoded, result_path, codec, composite, outputs, progress) -> int:
    import contextlib

    from void_engine.io import (SEQUENCE_CODECS, VIDEO_CODECS, PlateOverlay, bgra_exact,
                                local_input, open_writer, probe)
    from void_engine.io.matte import deliver_file
    from void_engine.modelspace import ChangeRegions, first_occurrence, overlay_patches

    m = decoded.mapping
    n, fps = m.num_frames, _fps(m)
    result = np.load(result_path, mmap_mode="r")
    expected = (len(m.frame_indices), *m.model_size, 3)
    if result.shape != expected or result.dtype != np.uint8:
        raise InputError(f"result {result_path} is {result.dtype} {result.shape}, "
                         f"expected uint8 {expected}")
    pick = first_occurrence(m.frame_indices, n)  # drops the ping-pong padding
    blend = {"dilate_px": composite.dilate_px, "feather_px": composite.feather_px,
             "upscale": composite.upscale}
    # decode_shot stored the change regions and the matte: the 4K mask is not decoded again.
    stored = bool(decoded.regions_file and decoded.matte_file) and all(
        os.path.exists(decoded.beside(f)) for f in (decoded.regions_file, decoded.matte_file))
    with contextlib.ExitStack() as stack:
        plate_path = stack.enter_context(local_input(decoded.plate_uri, "plate"))
        plate = probe(plate_path, what="plate", fps=fps)
        if plate.size != tuple(m.plate_size):
            raise InputError(f"plate {decoded.plate_uri} changed size since decode_shot")
        audio = None
        if plate.kind == "video" and plate.audio_codec and codec in VIDEO_CODECS:
            whole = m.first_frame == 0 and n == plate.frames
            audio = (plate_path, float(m.first_frame / fps), None if whole else float(n / fps))
        out_dtype = _output_dtype(codec, plate.dtype)
        regions = overlay = None
        if stored:
            regions = ChangeRegions(decoded.beside(decoded.regions_file))
            stack.callback(regions.close)
            if len(regions) != n or regions.plate_size != plate.size:
                raise InputError(f"change regions in {decoded.regions_file} do not match "
                                 "the plate")
        if (regions is not None and "review" not in outputs and plate.kind == "video"
                and out_dtype == np.uint8 and plate.depth == 8 and codec in VIDEO_CODECS):
            # Composite inside the encoder: only the region's patches cross a pipe.
            union = regions.union(composite.dilate_px + composite.feather_px + 2)
            ys, xs = union or (slice(0, 1), slice(0, 1))
            overlay = PlateOverlay(plate_path, m.first_frame, n, ys.start, xs.start,
                                   (ys.stop - ys.start, xs.stop - xs.start),
                                   bgra=bgra_exact(plate.pix_fmt))
        writer = stack.enter_context(open_writer(
            outputs["result"], codec, fps=fps, size=plate.size, dtype=out_dtype, audio=audio,
            audio_codec=plate.audio_codec, overlay=overlay,
            start_number=m.first_frame if codec in SEQUENCE_CODECS else 0))
        done = 0
        if overlay is not None:
            small = (result[k] for k in pick)
            for done, patch in enumerate(overlay_patches(
                    regions, list(small), (overlay.y, overlay.x), overlay.size,
                    bgra=overlay.bgra, **blend), 1):
                writer.write(patch)
                if progress:
                    progress(done, n)
        else:
            done = _composite_in_python(decoded, plate, regions, result, pick, blend, outputs,
                                        writer, out_dtype, stack, progress)
        if done != n:
            raise InputError(f"plate/quadmask gave {done} of {n} frames while encoding")
    if stored:
        deliver_file(decoded.beside(decoded.matte_file), outputs["matte"])
    return done


def _composite_in_python(decoded, plate, regions, result, pick, blend, outputs, writer,
                         out_dtype, stack, progress) -> int:
    """Composite each full plate frame here (any depth, any codec, review media); the plate
    is read a couple of frames ahead on a thread. Without stored regions the quadmask is
    decoded again and the matte written alongside."""
    import itertools

    from void_engine.io import Prefetch, local_input, probe, read_frames
    from void_engine.modelspace import composite_frame, composite_region
    from void_engine.quadmask import open_quadmask_writer, read_quadmask
    from void_engine.review import ReviewWriter

    m = decoded.mapping
    n, fps = m.num_frames, _fps(m)
    reviewer = matte = None
    if "review" in outputs:
        reviewer = stack.enter_context(ReviewWriter(
            outputs["review"], outputs["contact"], plate_size=plate.size, fps=fps, frames=n))
    if regions is not None:
        # Review thumbnails only need the mask at their own size: ffmpeg scales the matte.
        masks = (read_quadmask(decoded.beside(decoded.matte_file), count=n, strict=False,
                               size=(reviewer.col_h, reviewer.col_w))
                 if reviewer else itertools.repeat(None))
    else:
        mask_path = stack.enter_context(local_input(decoded.quadmask_uri, "quadmask"))
        minfo = probe(mask_path, what="quadmask")
        masks = read_quadmask(mask_path, first=decoded.mask_first_frame, count=n,
                              size=None if minfo.size == plate.size else plate.size,
                              strict=False)
        matte = stack.enter_context(open_quadmask_writer(outputs["matte"], fps=fps,
                                                         size=plate.size))
    frames = stack.enter_context(Prefetch(read_frames(plate, first=m.first_frame, count=n,
                                                      threads=2), depth=2))
    done = 0
    for j, (frame, mask) in enumerate(zip(frames, masks)):
        plate_frame = frame.copy() if reviewer else frame
        if regions is not None:
            out = frame if frame.flags.writeable else frame.copy()
            region = regions[j]
            if region is not None:
                composite_region(out, *region, result[pick[j]], **blend)
        else:
            out = composite_frame(frame, mask, result[pick[j]], **blend)
        writer.write(_convert(out, out_dtype))
        if matte is not None:
            matte.write(mask)
        if reviewer:
            reviewer.add(j, plate_frame, mask, out)
        done = j + 1
        if progress:
            progress(done, n)
    return done


def _output_dtype(codec: str, plate_dtype: np.dtype) -> np.dtype:
    """Keep the plate's depth where the codec can hold it (FFV1/ProRes/PNG 16-bit, EXR)."""
    if codec == "h264":
        return np.dtype(np.uint8)
    if codec == "exr":
        return np.dtype(plate_dtype)
    return np.dtype(np.uint8) if plate_dtype == np.uint8 else np.dtype(np.uint16)


def _convert(frame: np.ndarray, dtype: np.dtype) -> np.ndarray:
    from void_engine.io import from_float, to_uint8

    if frame.dtype == dtype:
        return frame
    if dtype == np.uint8:
        return to_uint8(frame)
    return from_float(frame.astype(np.float32) * 65535.0, dtype)  # float plate -> 16-bit


def _fps(m: ModelSpaceMap) -> Fraction:
    if m.plate_fps_rational:
        return Fraction(m.plate_fps_rational)
    return Fraction(m.plate_fps).limit_denominator(100000)


def _strip_ext(uri: str) -> str:
    base, ext = os.path.splitext(uri.rstrip("/"))
    return base if ext.lower() in (".mp4", ".mov", ".mkv") else uri.rstrip("/")


def _save_npy(path: str | Path, array: np.ndarray) -> str:
    from void_engine.io.uri import make_public

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        make_public(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return str(path)


def _write_json(path: str | Path, payload: dict) -> str:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=list))
    tmp.replace(path)
    return str(path)
